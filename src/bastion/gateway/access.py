"""What one caller may do: the effective policy of role ∩ team ∩ user ∩ key.

A key whose team is not in the policy (removed since the key was made) may use no model.

- Models: the role's patterns, narrowed by the team's, the user's and the key's lists
  (each ``None`` when that level does not narrow).
- ``max_tokens_per_request``: the smallest of the role's, the team's and the key's.
- Rate limits, per scope: the key's own limits (else ``defaults.limits``) on the key,
  the user's on the user, the team's on the team. Every one applies.
- Budgets, per scope: the key's own on the key, the user's (else ``defaults.budgets``)
  on the user, the team's on the team. Every one applies; a call is refused if it could
  overrun any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.auth.principal import Principal
from bastion.gateway.counters import BudgetLimit, RateLimit
from bastion.policy.schema import Budget, Limits, Policy, matches_any


@dataclass(frozen=True)
class Access:
    role_models: tuple[str, ...]
    narrowing: tuple[tuple[str, ...], ...]
    max_tokens_per_request: int | None
    rate_limits: tuple[RateLimit, ...]
    budgets: tuple[BudgetLimit, ...]

    def allows(self, model: str) -> bool:
        if not matches_any(model, list(self.role_models)):
            return False
        return all(matches_any(model, list(patterns)) for patterns in self.narrowing)


def _limits(scope: str, limits: Limits | None) -> list[RateLimit]:
    if limits is None:
        return []
    out = []
    if limits.requests_per_minute:
        out.append(RateLimit(scope, "requests", limits.requests_per_minute))
    if limits.tokens_per_minute:
        out.append(RateLimit(scope, "tokens", limits.tokens_per_minute))
    return out


def _budgets(scope: str, budgets: list[Budget]) -> list[BudgetLimit]:
    return [BudgetLimit(scope, b.usd, b.per) for b in budgets]


def resolve_access(policy: Policy, principal: Principal) -> Access:
    role = policy.roles.get(principal.role)
    team = policy.teams.get(principal.team) if principal.team else None
    user = policy.users.get(principal.user)
    key = principal.restrictions

    narrowing: list[tuple[str, ...]] = []
    if principal.team and team is None:
        # A team the policy no longer knows: its rules are gone, so its keys get nothing
        # rather than escaping them.
        narrowing.append(())
    for models in (
        team.models if team else None,
        user.models if user else None,
        key.models if key else None,
    ):
        if models is not None:
            narrowing.append(tuple(models))
    caps = [
        c
        for c in (
            role.max_tokens_per_request if role else None,
            team.max_tokens_per_request if team else None,
            key.max_tokens_per_request if key else None,
        )
        if c
    ]

    key_scope = f"key:{principal.key_id}"
    rate_limits = _limits(key_scope, key.limits if key and key.limits else policy.defaults.limits)
    if user is not None:
        rate_limits += _limits(f"user:{principal.user}", user.limits)
    if team is not None and principal.team:
        rate_limits += _limits(f"team:{principal.team}", team.limits)

    budgets = _budgets(key_scope, key.budgets) if key else []
    user_budgets = user.budgets if user is not None and user.budgets else policy.defaults.budgets
    budgets += _budgets(f"user:{principal.user}", user_budgets)
    if team is not None and principal.team:
        budgets += _budgets(f"team:{principal.team}", team.budgets)

    return Access(
        role_models=tuple(role.models) if role else (),
        narrowing=tuple(narrowing),
        max_tokens_per_request=min(caps) if caps else None,
        rate_limits=tuple(rate_limits),
        budgets=tuple(budgets),
    )
