"""Data-subject rights: everything held about a person, exported or erased.

Each domain that holds personal data plugs in an exporter (and, if it must erase, an
eraser) with :func:`register_exporter` / :func:`register_eraser`; the ledger and its
stored content are registered here. ``bastion subject export|erase`` and the API run
every registered one.
"""

from bastion.subjects.registry import (
    SubjectContext,
    register_eraser,
    register_exporter,
)
from bastion.subjects.service import ErasureResult, SubjectService

__all__ = [
    "ErasureResult",
    "SubjectContext",
    "SubjectService",
    "register_eraser",
    "register_exporter",
]
