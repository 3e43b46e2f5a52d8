"""Permissions, and which roles hold them by default.

Every HTTP route declares exactly one permission (see ``bastion.api.deps.requires``);
a role holds a set of permissions. The built-in roles are ``admin``, ``analyst`` and
``guest``; the policy file may add roles and may override a role's permissions.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    PUBLIC = "public"  # no key needed (health, readiness)
    AUTHENTICATED = "authenticated"  # any valid key (whoami)
    LLM_USE = "llm:use"
    KEYS_MANAGE = "keys:manage"
    AUDIT_READ = "audit:read"
    POLICY_READ = "policy:read"
    POLICY_MANAGE = "policy:manage"
    METRICS_READ = "metrics:read"
    MODELS_READ = "models:read"
    MODELS_WRITE = "models:write"
    MODELS_APPROVE = "models:approve"
    MODELS_ADMIN = "models:admin"
    MONITORING_READ = "monitoring:read"
    MODELS_PREDICT = "models:predict"  # POST /predict/{model} (the version in production)
    MODELS_PIN = "models:pin"  # ... with ?alias= or ?version= (a version not released)
    PREDICTIONS_LABEL = "predictions:label"  # attach ground truth to logged predictions
    #: Compliance reports, attestations and legal clocks: what an auditor needs.
    REPORTS_READ = "reports:read"
    REPORTS_WRITE = "reports:write"  # attest a control, open or close an incident
    DOCUMENTS_READ = "documents:read"
    DOCUMENTS_WRITE = "documents:write"
    SUBJECTS_MANAGE = "subjects:manage"  # export and erase a data subject's data
    RESEARCH_RUN = "research:run"  # POST /research: an agent run over the tools
    MCP_USE = "mcp:use"  # reach /mcp; which tools is the policy's tools allow-lists


GRANTABLE = frozenset(Permission) - {Permission.PUBLIC, Permission.AUTHENTICATED}

DEFAULT_ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(GRANTABLE),
    "analyst": frozenset(
        {
            Permission.LLM_USE,
            Permission.POLICY_READ,
            Permission.METRICS_READ,
            Permission.MODELS_READ,
            Permission.MODELS_WRITE,
            Permission.MONITORING_READ,
            Permission.MODELS_PREDICT,
            Permission.MODELS_PIN,
            Permission.PREDICTIONS_LABEL,
            Permission.DOCUMENTS_READ,
            Permission.DOCUMENTS_WRITE,
            Permission.RESEARCH_RUN,
            Permission.MCP_USE,
        }
    ),
    "guest": frozenset({Permission.LLM_USE, Permission.DOCUMENTS_READ, Permission.MCP_USE}),
}

# Roles that exist only through the policy file get this unless they list their own.
NEW_ROLE_PERMISSIONS = frozenset(
    {Permission.LLM_USE, Permission.DOCUMENTS_READ, Permission.MCP_USE}
)
