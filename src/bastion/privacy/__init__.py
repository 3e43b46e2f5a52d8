"""``bastion.privacy``: find personal data, mask it before it leaves, restore it, catch leaks.

Plain Python (no web framework); works offline with no model download. The gateway
uses :class:`PrivacyGuard`; the parts are usable on their own::

    from bastion.privacy import Analyzer
    Analyzer().analyze("mail jane.doe@example.com")  # [Span(EMAIL_ADDRESS, 5, 25, ...)]

Modules: ``recognizers``, ``phones``, ``names`` (people and places), ``addresses``,
``secrets`` (credentials: the ``SECRET_*`` types) and ``ner`` (the optional model
backend) detect; ``engine`` (one pass, overlaps,
context, thresholds, allow-list), ``operators`` (placeholder, redact, partial, hash,
encrypt, block), ``vault``, ``restore`` (also streaming), ``leaks``, ``denylist``,
``chat`` (OpenAI request and response shapes), ``config`` (the policy's sections),
``errors``, ``guard`` (all of it, per policy).

Names load on first use (PEP 562): the policy schema imports
:mod:`bastion.privacy.config` alone and should not pay for the detectors to do so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import lazy_exports

# The detectors run compiled where the build compiled them (see ``_native``). The
# programs that start Bastion (the server, the CLI, the tests, the benchmarks) call
# ``bastion.privacy._native.install_guard()`` first, so that a source edited since the
# build is loaded as source instead, never skipped; importing this package changes
# nothing in ``sys.meta_path``.

if TYPE_CHECKING:
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

_EXPORTS = {
    "Analyzer": "bastion.privacy.engine",
    "ChatStreamRestorer": "bastion.privacy.chat",
    "DEFAULT_ENTITIES": "bastion.privacy.entities",
    "DEFAULT_PHONE_REGIONS": "bastion.privacy.config",
    "DecryptionFailed": "bastion.privacy.errors",
    "DenyHit": "bastion.privacy.denylist",
    "Denylist": "bastion.privacy.denylist",
    "DenylistBlocked": "bastion.privacy.errors",
    "DenylistEntry": "bastion.privacy.config",
    "DetectionFailed": "bastion.privacy.errors",
    "KNOWN_ENTITIES": "bastion.privacy.entities",
    "Leak": "bastion.privacy.leaks",
    "LeakBlocked": "bastion.privacy.errors",
    "LeakScanner": "bastion.privacy.leaks",
    "NerBackendUnavailable": "bastion.privacy.errors",
    "NerPolicy": "bastion.privacy.config",
    "OperatorSpec": "bastion.privacy.config",
    "Operators": "bastion.privacy.operators",
    "PrivacyBlocked": "bastion.privacy.errors",
    "PrivacyConfigError": "bastion.privacy.errors",
    "PrivacyError": "bastion.privacy.errors",
    "PrivacyGuard": "bastion.privacy.guard",
    "PrivacyKeys": "bastion.privacy.operators",
    "PrivacyPolicy": "bastion.privacy.config",
    "PromptPolicy": "bastion.privacy.config",
    "Protected": "bastion.privacy.guard",
    "ResponseCheck": "bastion.privacy.guard",
    "ResponsePolicy": "bastion.privacy.config",
    "Restored": "bastion.privacy.restore",
    "Span": "bastion.privacy.entities",
    "StreamRestorer": "bastion.privacy.restore",
    "Vault": "bastion.privacy.vault",
    "VaultStore": "bastion.privacy.vault",
    "decrypt": "bastion.privacy.operators",
    "decrypt_all": "bastion.privacy.operators",
    "map_request_texts": "bastion.privacy.chat",
    "restore_response": "bastion.privacy.chat",
}


# ``restore`` names both a submodule and a function: once the submodule is imported,
# Python binds the package attribute to the module, so the function is bound eagerly
# (it is light: no detectors).
from bastion.privacy.restore import restore  # noqa: E402

__getattr__ = lazy_exports(__name__, _EXPORTS)


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
