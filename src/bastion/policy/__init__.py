"""The governance policy file: schema, validation with located errors, loading, reload."""

from bastion.policy.loader import LoadedPolicy, PolicyError, PolicyIssue, load_policy, parse_policy
from bastion.policy.schema import Policy
from bastion.policy.starter import STARTER_POLICY, write_starter_policy
from bastion.policy.store import PolicyStore, ReloadOutcome

__all__ = [
    "STARTER_POLICY",
    "LoadedPolicy",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "PolicyStore",
    "ReloadOutcome",
    "load_policy",
    "parse_policy",
    "write_starter_policy",
]
