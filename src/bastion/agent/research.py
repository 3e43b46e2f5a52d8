"""``POST /research``: a bounded agent loop whose every tool call is governed.

A run is a sequence of tool calls. With the ``local`` provider (or when the request
names its ``steps``) the plan is fixed and the run deterministic: ``risk_check`` the
topic, ``search`` the collections, ``read`` the best document, ``summarize`` what was
found (a gateway call with the versioned ``research`` prompt). With a real model the
model chooses: it is offered the tools the caller may use as OpenAI tools and its
``tool_calls`` are executed until it answers or the run is stopped.

Every tool call goes through :meth:`Tools.call`, which

* refuses a tool that the policy's ``answers.research.tools`` does not allow for the
  caller's role and team (``tool_not_allowed``), an argument over the tool's limits
  (``tool_argument_refused``) and a tool called more than its ``max_calls``;
* runs it inside the gateway's governed-call lifecycle (``Call`` of family ``tool``), so
  each call — served or refused — is one ledger event ``tool.<name>`` carrying the run
  id, the step, digests of its arguments and result, its latency and outcome;
* and the summarize step is a gateway chat call of the caller's: budgets, masking and
  its own ``llm.chat`` event apply, linked by the same run id.

The run stops at ``max_steps`` tool calls or when what it spent reaches ``budget_usd``
(checked before each call: a call that starts within budget can pass it by its own cost,
no further call starts). The run's own ``agent.research`` event closes it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from bastion.agent.risk import risk_check
from bastion.audit import EventIn
from bastion.auth.principal import Principal
from bastion.documents.retrieval import Passage
from bastion.errors import BastionError
from bastion.gateway.calls import Call
from bastion.gateway.errors import BudgetExceeded
from bastion.observability.context import current_request_id
from bastion.rag.config import ResearchPolicy, ToolConfig
from bastion.rag.errors import ToolArgumentRefused, ToolNotAllowed
from bastion.rag.grounding import GroundingChecker
from bastion.rag.schemas import ResearchIn, StepIn
from bastion.rag.service import Answers, new_run_id, prompt_passages
from bastion.rag.text import citations, sentences, strip_citations, terms

DEFAULT_PLAN = ("risk_check", "search", "read", "summarize")
RESEARCH_PROMPT = "research"
SNIPPET = 240


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Source:
    n: int
    passage: Passage

    def as_dict(self) -> dict[str, Any]:
        p = self.passage
        text = " ".join(p.text.split())
        return {
            "n": self.n,
            "document": p.document,
            "collection": p.collection,
            "location": p.location,
            "chunk_id": p.chunk_id,
            "snippet": text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…",
        }


@dataclass
class Run:
    run_id: str
    principal: Principal
    request: ResearchIn
    config: ResearchPolicy
    max_steps: int
    budget_usd: float
    model: str
    sources: list[Source] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    spent_usd: float = 0.0
    risk: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "done"
    prompt: dict[str, Any] | None = None
    served_model: str | None = None
    found: list[Passage] = field(default_factory=list)  # the last search's, best first

    def add_passages(self, passages: list[Passage]) -> list[int]:
        numbers = []
        for p in passages:
            existing = next((s.n for s in self.sources if s.passage.chunk_id == p.chunk_id), None)
            if existing is None:
                existing = len(self.sources) + 1
                self.sources.append(Source(existing, p))
            numbers.append(existing)
        return numbers


class Research:
    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.gateway = answers.gateway
        self.retriever = answers.retriever

    async def run(self, principal: Principal, request: ResearchIn) -> dict[str, Any]:
        policy = self.answers.policy_store.policy
        config = policy.answers.research
        run = Run(
            run_id=new_run_id(),
            principal=principal,
            request=request,
            config=config,
            max_steps=min(request.max_steps or config.max_steps, config.max_steps),
            budget_usd=min(request.budget_usd or config.budget_usd, config.budget_usd),
            model=request.model or policy.answers.model,
        )
        model_cfg = policy.models.get(run.model)
        provider = policy.providers.get(model_cfg.provider) if model_cfg else None
        local = model_cfg is not None and (
            model_cfg.provider == "local" or (provider is not None and provider.kind == "local")
        )
        try:
            if request.steps is not None or local:
                plan: list[str | StepIn] = list(request.steps or DEFAULT_PLAN)
                await self._planned(run, plan)
            else:
                await self._model_driven(run)
        except BastionError as exc:
            await self._close(run, "failure", exc.code)
            raise
        await self._close(run, "success", None)
        return {
            "findings": run.findings,
            "sources": [s.as_dict() for s in run.sources],
            "risk": run.risk,
            "audit_trace": run.trace,
            "stopped": run.stopped,
            "request_id": current_request_id(),
            "run_id": run.run_id,
            "model": run.served_model,
            "cost_usd": round(run.spent_usd, 9),
            "prompt": run.prompt,
        }

    # --- the two loops -------------------------------------------------------------------

    def _may_continue(self, run: Run) -> bool:
        if run.stopped == "caller_budget":
            return False
        if len(run.trace) >= run.max_steps:
            run.stopped = "max_steps"
            return False
        if run.spent_usd >= run.budget_usd:
            run.stopped = "budget"
            return False
        return True

    async def _planned(self, run: Run, steps: list[str | StepIn]) -> None:
        topic = run.request.topic
        for step in steps:
            if not self._may_continue(run):
                return
            name, extra = (step, {}) if isinstance(step, str) else (step.tool, step.args)
            tool = run.config.tools.get(name)
            kind = run.config.kind_of(name)
            args: dict[str, Any]
            if kind == "search":
                args = {"query": topic, "top_k": min(5, tool.max_top_k if tool else 5)}
            elif kind == "read":
                pool = run.found or [s.passage for s in run.sources]
                best = pool[0].document_id if pool else None
                args = {"ref": best, "max_chars": min(4000, tool.max_chars if tool else 4000)}
            elif kind == "summarize":
                args = {"passages": [s.n for s in run.sources][: tool.max_passages if tool else 10]}
            else:
                args = {"text": topic}
            await self.call(run, name, args | extra)

    async def _model_driven(self, run: Run) -> None:
        """The model picks the tools: offered the ones the caller may use (summarize is
        its own final answer), its tool calls run until it answers or the run stops."""
        offered = [
            name
            for name, tool in run.config.tools.items()
            if tool.allows(run.principal.role, run.principal.team)
            and run.config.kind_of(name) != "summarize"
        ]
        rendered = self.answers.prompts.render(
            RESEARCH_PROMPT, {"topic": run.request.topic, "passages": []}
        )
        run.prompt = rendered.evidence()
        messages: list[dict[str, Any]] = list(rendered.messages)
        while self._may_continue(run):
            body = {
                "model": run.model,
                "messages": messages,
                "tools": [_tool_schema(name, run.config.kind_of(name)) for name in offered],
                "temperature": 0,
            }
            reply = await self.gateway.chat(
                run.principal, body, links={"run": run.run_id, "kind": "agent.research"}
            )
            answer = reply.body or {}
            run.spent_usd += float(reply.headers.get("x-bastion-cost-usd", "0") or 0)
            run.served_model = answer.get("model")
            message = ((answer.get("choices") or [{}])[0].get("message")) or {}
            tool_calls = message.get("tool_calls") or []
            if not tool_calls:
                self._findings(run, str(message.get("content") or ""))
                return
            messages.append(
                {"role": "assistant", "content": message.get("content"), "tool_calls": tool_calls}
            )
            for tc in tool_calls:
                fn = tc.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    args = {"_invalid": True}
                result = await self.call(run, str(fn.get("name") or ""), args)
                messages.append(
                    {"role": "tool", "tool_call_id": tc.get("id"), "content": json.dumps(result)}
                )
                if not self._may_continue(run):
                    return

    # --- one governed tool call ----------------------------------------------------------

    async def call(self, run: Run, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Check, run and record one tool call; a refusal is recorded and returned (the
        run goes on), any other error ends the run."""
        step = len(run.trace) + 1
        call = Call(run.principal, name or "unknown", family="tool", resource_kind="tool")
        call.requested_model = name or "unknown"
        call.model_known = True
        call.served_model = name
        call.links = {"run": run.run_id, "step": str(step), "args": _digest(args)}
        entry: dict[str, Any] = {
            "step": step,
            "tool": name,
            "args_digest": call.links["args"],
            "result_digest": None,
            "cost_usd": 0.0,
            "error_code": None,
            "note": None,
        }
        lifecycle = self.gateway.lifecycle
        policy = self.answers.policy_store.policy
        started = time.perf_counter()
        result: dict[str, Any]
        try:
            async with lifecycle.governed(call, policy):
                tool = self._allowed(run, name, args)
                call.decisions["tool"] = "allowed"
                result = await self._execute(run, name, tool, args, entry)
                call.links["result"] = entry["result_digest"] = _digest(result)
                await lifecycle.finish(call, policy)
            entry["outcome"] = "success"
        except (ToolNotAllowed, ToolArgumentRefused, BudgetExceeded) as exc:
            entry["outcome"] = "refused"
            entry["error_code"] = exc.code
            entry["note"] = exc.message
            result = {"error": exc.code, "message": exc.message}
            if isinstance(exc, BudgetExceeded):  # the caller's own budget: nothing more
                run.stopped = "caller_budget"
        entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        run.trace.append(entry)
        return result

    def _allowed(self, run: Run, name: str, args: dict[str, Any]) -> ToolConfig:
        config = run.config
        tool = config.tools.get(name)
        p = run.principal
        if tool is None or not tool.allows(p.role, p.team):
            raise ToolNotAllowed(
                f"the tool {name!r} is not allowed for role {p.role!r}"
                + (f" and team {p.team!r}" if p.team else "")
                + "; the policy's answers.research.tools lists who may use each tool"
            )
        used = run.calls.get(name, 0)
        if used >= tool.max_calls:
            raise ToolArgumentRefused(
                f"the tool {name!r} may be called {tool.max_calls} times a run"
            )
        run.calls[name] = used + 1
        if not isinstance(args, dict) or args.get("_invalid"):
            raise ToolArgumentRefused(f"the arguments of {name!r} are not a JSON object")
        top_k = args.get("top_k")
        if top_k is not None and (not isinstance(top_k, int) or not 1 <= top_k <= tool.max_top_k):
            raise ToolArgumentRefused(f"top_k must be 1 to {tool.max_top_k} for {name!r}")
        max_chars = args.get("max_chars")
        if max_chars is not None and (
            not isinstance(max_chars, int) or not 1 <= max_chars <= tool.max_chars
        ):
            raise ToolArgumentRefused(f"max_chars must be 1 to {tool.max_chars} for {name!r}")
        for key in ("query", "text"):
            value = args.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > tool.max_chars):
                raise ToolArgumentRefused(f"{key} must be text of at most {tool.max_chars} chars")
        passages = args.get("passages")
        if passages is not None and (
            not isinstance(passages, list) or len(passages) > tool.max_passages
        ):
            raise ToolArgumentRefused(f"at most {tool.max_passages} passages for {name!r}")
        return tool

    async def _execute(
        self, run: Run, name: str, tool: ToolConfig, args: dict[str, Any], entry: dict[str, Any]
    ) -> dict[str, Any]:
        kind = run.config.kind_of(name)
        p = run.principal
        if kind == "search":
            query = str(args.get("query") or run.request.topic)
            collection = tool.collection or args.get("collection") or run.request.collection
            found = await self.retriever.search(collection, query, int(args.get("top_k") or 5), p)
            numbers = run.add_passages(found)
            run.found = list(found)
            return {
                "passages": [
                    {"n": n, "document": x.document, "location": x.location, "score": x.score}
                    for n, x in zip(numbers, found, strict=True)
                ]
            }
        if kind == "read":
            ref = args.get("ref")
            if not isinstance(ref, str) or not ref:
                raise ToolArgumentRefused("read needs ref: a document or chunk id from a search")
            reading = await self.retriever.read(ref, p)
            limit = int(args.get("max_chars") or tool.max_chars)
            text = reading.text[:limit]
            passage = Passage(
                chunk_id=reading.id,
                document_id=reading.document_id,
                document=reading.document,
                collection=reading.collection,
                location=reading.location,
                text=text,
                score=0.0,
                start=reading.start,
                end=reading.start + len(text),
            )
            (n,) = run.add_passages([passage])
            return {"n": n, "kind": reading.kind, "chars": len(text)}
        if kind == "summarize":
            wanted = args.get("passages") or [s.n for s in run.sources]
            chosen = [s for s in run.sources if s.n in set(wanted)][: tool.max_passages]
            if not chosen:
                raise ToolArgumentRefused("summarize needs passages: search or read first")
            passages = [s.passage for s in chosen]
            rendered = self.answers.prompts.render(
                RESEARCH_PROMPT,
                {"topic": run.request.topic, "passages": prompt_passages(passages)},
            )
            run.prompt = rendered.evidence()
            generated = await self.answers.generate(
                p, rendered, run.model, run.run_id, "agent.summarize"
            )
            run.spent_usd += generated.cost_usd
            run.served_model = generated.model
            entry["cost_usd"] = round(generated.cost_usd, 9)
            # The prompt numbers passages 1..k; map back to the run's source numbers.
            self._findings(run, generated.text, [s.n for s in chosen])
            return {"findings": len(run.findings), "tokens": generated.tokens}
        # risk_check
        text = str(args.get("text") or run.request.topic)
        guard = self.gateway.guard(self.answers.policy_store.policy)
        result = risk_check(text, guard).as_dict()
        if result["article"]:
            evidence = await self._risk_evidence(run, result["article"])
            if evidence is not None:
                (n,) = run.add_passages([evidence])
                result["evidence"] = n
        run.risk = result
        return result

    async def _risk_evidence(self, run: Run, article: str) -> Passage | None:
        """The corpus passage a category rests on (the AI Act article), when a collection
        the caller may read holds it."""
        query = {
            "Article 5": "prohibited artificial intelligence practices",
            "Article 6 and Annex III": "classification rules for high-risk AI systems",
            "Article 50": "transparency obligations providers deployers AI systems",
        }.get(article, article)
        try:
            found = await self.retriever.search(run.request.collection, query, 1, run.principal)
        except BastionError:
            return None
        return found[0] if found else None

    def _findings(self, run: Run, text: str, numbers: list[int] | None = None) -> None:
        """One finding per sentence, with its sources renumbered to the run's, and
        whether the grounding check supports it."""
        mapping = {i: n for i, n in enumerate(numbers or [], start=1)}
        pool = [s.passage.text for s in run.sources]
        checker = GroundingChecker(self.answers.policy_store.policy.answers.grounding_threshold)
        for span in sentences(text):
            claim = strip_citations(span.text)
            if not terms(claim):
                continue
            cited = (
                [mapping.get(n, n) for n in citations(span.text)]
                if numbers
                else citations(span.text)
            )
            cited = [n for n in cited if 1 <= n <= len(pool)]
            renumbered = f"{claim} " + "".join(f"[{i}]" for i in range(1, len(cited) + 1))
            verdict = checker.check(renumbered, [pool[n - 1] for n in cited]) if cited else None
            supported = bool(verdict and verdict.verdicts and verdict.verdicts[0].supported)
            run.findings.append({"claim": claim, "sources": cited, "supported": supported})

    async def _close(self, run: Run, outcome: str, error: str | None) -> None:
        p = run.principal
        details: dict[str, Any] = {
            "run": run.run_id,
            "collection": run.request.collection,
            "model": run.model,
            "steps": len(run.trace),
            "max_steps": run.max_steps,
            "budget_usd": run.budget_usd,
            "spent_usd": round(run.spent_usd, 9),
            "stopped": run.stopped,
            "prompt": run.prompt,
            "tools": [
                {"step": t["step"], "tool": t["tool"], "outcome": t.get("outcome")}
                for t in run.trace
            ],
            "sources": [s.passage.chunk_id for s in run.sources],
            "findings": len(run.findings),
            "unsupported_findings": sum(1 for f in run.findings if not f["supported"]),
            "risk": run.risk and {k: run.risk[k] for k in ("ai_act_category", "article")},
            "topic_digest": self.answers.digest("topic", run.request.topic),
            "key": p.key_prefix,
            "role": p.role,
            "team": p.team,
        }
        if error:
            details["error_code"] = error
        flags = []
        if any(t.get("outcome") == "refused" for t in run.trace):
            flags.append("tool_refused")
        if details["unsupported_findings"]:
            flags.append("unsupported_findings")
        await self.answers.ledger.append_async(
            EventIn(
                actor=p.actor,
                action="agent.research",
                resource=f"collection:{run.request.collection or '*'}",
                outcome=outcome,
                details=details,
                flags=tuple(flags),
                content={"topic": run.request.topic},
                store_content=self.answers.policy_store.policy.audit.store_content,
                subject=p.user,
            )
        )


def _tool_schema(name: str, kind: str | None) -> dict[str, Any]:
    properties: dict[str, Any]
    if kind == "search":
        description = "Search the document collections; returns numbered passages."
        properties = {"query": {"type": "string"}, "top_k": {"type": "integer"}}
        required = ["query"]
    elif kind == "read":
        description = "Read a document or chunk by the id a search returned."
        properties = {"ref": {"type": "string"}, "max_chars": {"type": "integer"}}
        required = ["ref"]
    else:
        description = "Check a text for personal data, deny-listed terms and its EU AI Act risk."
        properties = {"text": {"type": "string"}}
        required = ["text"]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }
