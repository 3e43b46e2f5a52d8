"""The whole database schema: every domain's tables, gathered at the top of the house.

``bastion.db`` stays below the domains (it knows engines, sessions and the declarative
base, not what is stored); this module imports each domain's tables so that Alembic's
environment and the schema tests see all of them in one ``metadata``.
"""

from __future__ import annotations

import bastion.audit.models
import bastion.auth.models
import bastion.delivery.models
import bastion.documents.models
import bastion.evidence.models
import bastion.feedback.models
import bastion.monitoring.models
import bastion.pipelines.models
import bastion.policy.models
import bastion.registry.models
import bastion.serving.models
import bastion.toolgate.models
import bastion.usage.models  # noqa: F401  (imported for their tables)
from bastion.db.base import Base

metadata = Base.metadata

__all__ = ["metadata"]
