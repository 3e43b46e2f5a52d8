"""The policy file's ``answers`` section: /query and /research (the policy schema
imports :class:`AnswersPolicy`). Every key has a default; an empty section works::

    answers:
      model: local                # the model /query and /research use when none is asked
      top_k: 5                    # passages a query retrieves by default (max_top_k caps it)
      max_top_k: 20
      min_relevance: 0.34         # grounded queries: share of the question's content words
                                  # the best passage must hold, else 422 not_grounded
      grounding_threshold: 0.6    # a sentence scoring below this is unsupported
      research:
        max_steps: 8              # the most tool calls a run may make (a request may ask fewer)
        budget_usd: 0.50          # the most a run may spend unless the request asks less
        tools:                    # allow-list: a tool not here, or not for the caller's
                                  # role, is refused and recorded
          search: {roles: ["*"], max_top_k: 10}
          read: {roles: ["*"], max_chars: 20000}
          summarize: {roles: ["*"], max_passages: 10}
          risk_check: {roles: ["*"]}
          regulations_search:     # a tool the policy registers: search over one collection
            kind: search
            collection: regulations
            roles: [analyst, admin]

Role names are patterns (``*``); ``teams`` narrows a tool to callers of those teams.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ToolKind = Literal["search", "read", "summarize", "risk_check"]
ToolName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
BUILTIN_TOOLS: tuple[ToolKind, ...] = ("search", "read", "summarize", "risk_check")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolConfig(_Strict):
    #: What the tool does; a tool named after a built-in kind may leave it out.
    kind: ToolKind | None = None
    roles: list[str] = Field(default_factory=lambda: ["*"])
    teams: list[str] | None = None
    #: A search tool fixed to one collection (the caller must still be allowed to read it).
    collection: str | None = None
    max_top_k: Annotated[int, Field(ge=1, le=100)] = 10
    max_chars: Annotated[int, Field(ge=1, le=1_000_000)] = 20_000
    max_passages: Annotated[int, Field(ge=1, le=50)] = 10
    #: The most calls of this tool one run may make.
    max_calls: Annotated[int, Field(ge=1, le=100)] = 10

    def allows(self, role: str, team: str | None) -> bool:
        if not any(fnmatch.fnmatchcase(role, pattern) for pattern in self.roles):
            return False
        return self.teams is None or (team is not None and team in self.teams)


def _default_tools() -> dict[str, ToolConfig]:
    return {name: ToolConfig() for name in BUILTIN_TOOLS}


class ResearchPolicy(_Strict):
    max_steps: Annotated[int, Field(ge=1, le=64)] = 8
    budget_usd: Annotated[float, Field(gt=0)] = 0.5
    tools: dict[ToolName, ToolConfig] = Field(default_factory=_default_tools)

    @model_validator(mode="after")
    def _kinds(self) -> ResearchPolicy:
        for name, tool in self.tools.items():
            if tool.kind is None and name not in BUILTIN_TOOLS:
                raise ValueError(f"tool {name!r} needs a kind: one of {', '.join(BUILTIN_TOOLS)}")
        return self

    def kind_of(self, name: str) -> ToolKind | None:
        tool = self.tools.get(name)
        if tool is None:
            return None
        if tool.kind is not None:
            return tool.kind
        return name if name in BUILTIN_TOOLS else None


class AnswersPolicy(_Strict):
    model: str = "local"
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    max_top_k: Annotated[int, Field(ge=1, le=100)] = 20
    min_relevance: Annotated[float, Field(ge=0, le=1)] = 0.34
    grounding_threshold: Annotated[float, Field(ge=0, le=1)] = 0.6
    research: ResearchPolicy = ResearchPolicy()
