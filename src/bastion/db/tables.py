"""Every table, imported in one place so that migrations see the whole schema."""

from bastion.audit.models import AuditCheckpoint, AuditContent, AuditEvent, AuditStream
from bastion.auth.models import ApiKey
from bastion.db.base import Base
from bastion.registry.models import (
    CardRow,
    EvidenceRow,
    ModelVersionRow,
    PromotionRequestRow,
    StageChangeRow,
)

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "AuditCheckpoint",
    "AuditContent",
    "AuditEvent",
    "AuditStream",
    "CardRow",
    "EvidenceRow",
    "ModelVersionRow",
    "PromotionRequestRow",
    "StageChangeRow",
    "metadata",
]
