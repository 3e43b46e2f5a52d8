"""What /query and /research take and give (pydantic; the routes declare these)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Collection = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class QueryIn(_In):
    question: Text
    collection: Collection | None = Field(
        default=None, description="One collection; none: every collection you may read."
    )
    top_k: Annotated[int, Field(ge=1, le=100)] | None = None
    grounded: bool = Field(
        default=True,
        description="Refuse (422 not_grounded) when retrieval finds nothing relevant.",
    )
    model: ModelName | None = None


class Citation(BaseModel):
    n: int
    document: str
    location: str
    snippet: str
    score: float
    collection: str
    chunk_id: str
    start: int
    end: int


class SentenceOut(BaseModel):
    sentence: str
    index: int
    start: int
    end: int
    cited: list[int]
    supported: bool
    score: float
    evidence: list[dict[str, Any]]
    missing: list[str]
    reasons: list[str]


class GroundingOut(BaseModel):
    supported: list[SentenceOut]
    unsupported: list[SentenceOut]
    score: float
    threshold: float
    invalid_citations: list[int]


class PromptOut(BaseModel):
    name: str
    version: int
    digest: str


class QueryOut(BaseModel):
    answer: str
    citations: list[Citation]
    grounding: GroundingOut
    request_id: str | None
    run_id: str
    model: str | None
    tokens: dict[str, int]
    cost_usd: float
    prompt: PromptOut
    timings_ms: dict[str, float]


class StepIn(_In):
    tool: Annotated[str, Field(min_length=1, max_length=64)]
    #: Arguments over the plan's own (checked against the tool's limits in the policy).
    args: dict[str, Any] = Field(default_factory=dict, max_length=16)


class ResearchIn(_In):
    topic: Text
    collection: Collection | None = None
    steps: list[Annotated[str, Field(min_length=1, max_length=64)] | StepIn] | None = Field(
        default=None,
        max_length=64,
        description="The tools to run, in order, by name or as {tool, args} (default: "
        "risk_check, search, read, summarize).",
    )
    max_steps: Annotated[int, Field(ge=1, le=64)] | None = None
    budget_usd: Annotated[float, Field(gt=0, le=1000)] | None = None
    model: ModelName | None = None


class Finding(BaseModel):
    claim: str
    sources: list[int]
    supported: bool


class Source(BaseModel):
    n: int
    document: str
    collection: str
    location: str
    chunk_id: str
    snippet: str


class TraceStep(BaseModel):
    step: int
    tool: str
    outcome: str
    args_digest: str
    result_digest: str | None
    latency_ms: float
    cost_usd: float
    error_code: str | None = None
    note: str | None = None


class ResearchOut(BaseModel):
    findings: list[Finding]
    sources: list[Source]
    risk: dict[str, Any] | None
    audit_trace: list[TraceStep]
    stopped: str
    request_id: str | None
    run_id: str
    model: str | None
    cost_usd: float
    prompt: PromptOut | None
