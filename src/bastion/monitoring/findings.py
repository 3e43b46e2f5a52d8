"""A finding: one thing a check noticed, with a severity, ready for alert routing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.monitoring.config import Severity

# response, access and clock: the evidence package's response monitoring, access
# anomalies and legal clocks (bastion.evidence)
Check = Literal[
    "drift", "performance", "fairness", "embedding", "prediction", "response", "access", "clock"
]


@dataclass(frozen=True)
class Finding:
    check: Check
    subject: str
    kind: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Stable identity for de-duplication: the same problem on the same subject."""
        raw = f"{self.check}\x1f{self.subject}\x1f{self.kind}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "kind": self.kind,
            "severity": self.severity.value,
            "message": self.message,
            "details": self.details,
            "fingerprint": self.fingerprint,
        }
