"""The hash-chained audit ledger: append (group commit), verify, query, export, erase.

LedgerUnavailable (503, audit_unavailable)
BadCursor (400, invalid_cursor)
"""

from bastion.audit.events import ChainKey, Digester, EventIn, Ledger, LedgerUnavailable, Receipt
from bastion.audit.repository import EventFilter, EventRepository, EventView, Page
from bastion.audit.service import AuditService, Erasure
from bastion.audit.signing import Signer, load_or_create_signer, load_public_key
from bastion.audit.verify import Problem, VerifyReport, verify_ledger
from bastion.audit.writer import LedgerWriter

__all__ = [
    "AuditService",
    "ChainKey",
    "Digester",
    "Erasure",
    "EventFilter",
    "EventIn",
    "EventRepository",
    "EventView",
    "Ledger",
    "LedgerUnavailable",
    "LedgerWriter",
    "Page",
    "Problem",
    "Receipt",
    "Signer",
    "VerifyReport",
    "load_or_create_signer",
    "load_public_key",
    "verify_ledger",
]
