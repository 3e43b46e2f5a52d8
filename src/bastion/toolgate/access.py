"""Who may use which tool: one check for what ``tools/list`` shows and what runs.

The role's ``tools`` patterns, narrowed by the team's, the user's and the key's lists
(each ``None`` when that level does not narrow). Default deny: a role with no list, a
team the policy no longer knows, an empty list: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.auth.principal import Principal
from bastion.policy.schema import Policy, matches_any


@dataclass(frozen=True)
class ToolAccess:
    role: tuple[str, ...]
    narrowing: tuple[tuple[str, ...], ...]

    def allows(self, name: str) -> bool:
        """``name`` is ``server.tool``, ``prompt:server.name`` or ``resource:server.uri``."""
        if not self.role or not matches_any(name, list(self.role)):
            return False
        return all(matches_any(name, list(patterns)) for patterns in self.narrowing)


def resolve_tool_access(policy: Policy, principal: Principal) -> ToolAccess:
    role = policy.roles.get(principal.role)
    team = policy.teams.get(principal.team) if principal.team else None
    user = policy.users.get(principal.user)
    key = principal.restrictions
    narrowing: list[tuple[str, ...]] = []
    if principal.team and team is None:
        narrowing.append(())
    for tools in (
        team.tools if team else None,
        user.tools if user else None,
        key.tools if key else None,
    ):
        if tools is not None:
            narrowing.append(tuple(tools))
    return ToolAccess(tuple(role.tools) if role else (), tuple(narrowing))
