"""Errors raised by :mod:`bastion.privacy`.

    BastionError (bastion.errors)
    └── PrivacyError                 privacy_error
        ├── PrivacyBlocked           pii_blocked               400  personal data not allowed
        │   ├── DenylistBlocked      denylist_blocked          400  a deny-listed term
        │   └── LeakBlocked          pii_leak_blocked          502  the answer leaked data
        ├── DetectionFailed          privacy_detection_failed  503  detection raised
        ├── PrivacyConfigError       privacy_config_invalid    500  policy or keys unusable
        │   └── NerBackendUnavailable ner_backend_unavailable  500  NER package missing
        └── DecryptionFailed         privacy_decrypt_failed    400  token altered, wrong key

Messages never contain the personal data that caused them: they name entity types and
deny-list entries only, so they are safe to log and to put in the audit ledger.
"""

from __future__ import annotations

from typing import ClassVar

from bastion.errors import BastionError


class PrivacyError(BastionError):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "privacy_error"
    type: ClassVar[str] = "invalid_request_error"


class PrivacyBlocked(PrivacyError):
    code = "pii_blocked"


class DenylistBlocked(PrivacyBlocked):
    code = "denylist_blocked"


class LeakBlocked(PrivacyBlocked):
    status = 502
    code = "pii_leak_blocked"
    type = "server_error"


class DetectionFailed(PrivacyError):
    status = 503
    code = "privacy_detection_failed"
    type = "server_error"


class PrivacyConfigError(PrivacyError):
    status = 500
    code = "privacy_config_invalid"
    type = "server_error"


class NerBackendUnavailable(PrivacyConfigError):
    code = "ner_backend_unavailable"


class DecryptionFailed(PrivacyError):
    code = "privacy_decrypt_failed"
