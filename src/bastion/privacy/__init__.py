"""Privacy guard."""
from bastion.privacy.engine import Analyzer

__all__ = ["Analyzer"]
