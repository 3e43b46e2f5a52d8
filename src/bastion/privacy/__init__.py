"""``bastion.privacy``: find personal data, mask it before it leaves, restore it, catch leaks.

Plain Python (no web framework); works offline with no model download. The gateway
uses :class:`PrivacyGuard`; the parts are usable on their own::

    from bastion.privacy import Analyzer
    Analyzer().analyze("mail jane.doe@example.com")  # [Span(EMAIL_ADDRESS, 5, 25, ...)]

Modules: ``recognizers`` and ``names`` (detection), ``engine`` (one pass, overlaps,
context, thresholds, allow-list), ``operators`` (placeholder, redact, partial, hash,
encrypt, block), ``vault``, ``restore`` (also streaming), ``leaks``, ``denylist``,
``chat`` (OpenAI request and response shapes), ``config`` (the policy's sections),
``errors``, ``guard`` (all of it, per policy).
"""

from bastion.privacy.chat import ChatStreamRestorer, map_request_texts, restore_response
from bastion.privacy.config import (
    DEFAULT_PHONE_REGIONS,
    DenylistEntry,
    NerPolicy,
    OperatorSpec,
    PrivacyPolicy,
    PromptPolicy,
    ResponsePolicy,
)
from bastion.privacy.denylist import DenyHit, Denylist
from bastion.privacy.engine import Analyzer
from bastion.privacy.entities import DEFAULT_ENTITIES, KNOWN_ENTITIES, Span
from bastion.privacy.errors import (
    DecryptionFailed,
    DenylistBlocked,
    DetectionFailed,
    LeakBlocked,
    NerBackendUnavailable,
    PrivacyBlocked,
    PrivacyConfigError,
    PrivacyError,
)
from bastion.privacy.guard import PrivacyGuard, Protected, ResponseCheck
from bastion.privacy.leaks import Leak, LeakScanner
from bastion.privacy.operators import Operators, PrivacyKeys, decrypt, decrypt_all
from bastion.privacy.restore import Restored, StreamRestorer, restore
from bastion.privacy.vault import Vault, VaultStore

__all__ = [
    "DEFAULT_ENTITIES",
    "DEFAULT_PHONE_REGIONS",
    "KNOWN_ENTITIES",
    "Analyzer",
    "ChatStreamRestorer",
    "DecryptionFailed",
    "DenyHit",
    "Denylist",
    "DenylistBlocked",
    "DenylistEntry",
    "DetectionFailed",
    "Leak",
    "LeakBlocked",
    "LeakScanner",
    "NerBackendUnavailable",
    "NerPolicy",
    "OperatorSpec",
    "Operators",
    "PrivacyBlocked",
    "PrivacyConfigError",
    "PrivacyError",
    "PrivacyGuard",
    "PrivacyKeys",
    "PrivacyPolicy",
    "PromptPolicy",
    "Protected",
    "ResponseCheck",
    "ResponsePolicy",
    "Restored",
    "Span",
    "StreamRestorer",
    "Vault",
    "VaultStore",
    "decrypt",
    "decrypt_all",
    "map_request_texts",
    "restore",
    "restore_response",
]
