"""Errors raised by :mod:`bastion.privacy`.

    BastionError                        (bastion.errors)
    └── PrivacyError                    privacy_error
        ├── PrivacyBlocked              pii_blocked             400  a block operator matched
        │   ├── DenylistBlocked         denylist_blocked        400  a deny-listed term matched
        │   └── LeakBlocked             pii_leak_blocked        502  the response leaked personal data
        ├── DetectionFailed             privacy_detection_failed 503 detection raised; fail closed
        ├── PrivacyConfigError          privacy_config_invalid  500  the policy or keys are unusable
        ├── NerBackendUnavailable       ner_backend_unavailable 500  optional NER package missing
        └── DecryptionFailed            privacy_decrypt_failed  400  a token was altered or the key is wrong

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
