"""Grounded answers: retrieve, generate through the gateway, check, record.

:meth:`Answers.query` is the whole of ``POST /query``:

1. **retrieve** the best passages from the collections the caller may read;
2. **refuse** (``422 not_grounded``, with the best passages found) when the request is
   grounded and no passage holds enough of the question's content words;
3. **generate** with the versioned ``query`` prompt, as a gateway call of the caller's
   (policy, budgets, masking, resilience and its own ``llm.chat`` ledger event apply);
4. **check** each sentence of the answer against the passages it cites
   (:mod:`bastion.rag.grounding`);
5. **record** one ``rag.query`` ledger event: collection, chunk ids and scores, the
   prompt's version and digest, the grounding result, keyed digests of the question,
   the passages and the answer. It and the generation's event carry the same
   ``run`` id (``details.run`` here, ``details.links.run`` there) and request id.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from bastion.audit import Digester, EventIn, Ledger
from bastion.auth.principal import Principal
from bastion.documents.retrieval import Passage, Retriever
from bastion.errors import BastionError
from bastion.gateway.service import Gateway
from bastion.observability.context import current_request_id
from bastion.policy import PolicyStore
from bastion.prompts import PromptLibrary, Rendered
from bastion.rag.errors import NotGrounded
from bastion.rag.grounding import Grounding, GroundingChecker
from bastion.rag.schemas import QueryIn
from bastion.rag.text import citations, terms

SNIPPET_CHARS = 280
QUERY_PROMPT = "query"


def new_run_id() -> str:
    return f"run_{uuid.uuid4().hex[:24]}"


def relevance(question: str, text: str) -> float:
    """The share of the question's content words (long words weigh more) in ``text``."""
    wanted = set(terms(question))
    if not wanted:
        return 0.0
    present = set(terms(text))
    weight = {t: min(1.0, 0.25 + len(t) / 10) for t in wanted}
    return round(sum(weight[t] for t in wanted & present) / sum(weight.values()), 4)


def passage_view(p: Passage, n: int, snippet: str | None = None) -> dict[str, Any]:
    return {
        "n": n,
        "document": p.document,
        "location": p.location,
        "snippet": snippet if snippet is not None else _snip(p.text),
        "score": round(p.score, 6),
        "collection": p.collection,
        "chunk_id": p.chunk_id,
        "start": p.start,
        "end": p.end,
    }


def _snip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1].rstrip() + "…"


def prompt_passages(passages: list[Passage]) -> list[dict[str, Any]]:
    return [
        {"n": n, "source": f"{p.document}, {p.location}".strip(", "), "text": p.text}
        for n, p in enumerate(passages, start=1)
    ]


@dataclass
class Generation:
    """One governed generation's outcome, as the run records it."""

    text: str
    model: str | None
    tokens: dict[str, int]
    cost_usd: float
    latency_ms: float


class Answers:
    """``/query`` (and the generation step /research shares)."""

    def __init__(
        self,
        gateway: Gateway,
        retriever: Retriever,
        prompts: PromptLibrary,
        ledger: Ledger,
        policy: PolicyStore,
        digester: Digester,
    ) -> None:
        self.gateway = gateway
        self.retriever = retriever
        self.prompts = prompts
        self.ledger = ledger
        self.policy_store = policy
        self.digester = digester

    # --- shared pieces -----------------------------------------------------------------

    def digest(self, kind: str, value: str) -> str:
        return self.digester.digest({kind: value})

    async def generate(
        self,
        principal: Principal,
        rendered: Rendered,
        model: str,
        run_id: str,
        kind: str,
        max_tokens: int | None = None,
    ) -> Generation:
        """A gateway chat call for ``rendered``, linked to the run; raises what the
        gateway raises (budget, policy, upstream), after it recorded the call."""
        hints = rendered.prompt.spec.model
        body: dict[str, Any] = {"model": model, "messages": rendered.messages}
        if hints.temperature is not None:
            body["temperature"] = hints.temperature
        cap = max_tokens or hints.max_tokens
        if cap is not None:
            body["max_tokens"] = cap
        started = time.perf_counter()
        reply = await self.gateway.chat(
            principal,
            body,
            links={
                "run": run_id,
                "kind": kind,
                "prompt": rendered.prompt.ref,
                "prompt_digest": rendered.prompt.digest,
            },
        )
        elapsed = (time.perf_counter() - started) * 1000
        answer = reply.body or {}
        choices = answer.get("choices") or [{}]
        text = str((choices[0].get("message") or {}).get("content") or "")
        usage = answer.get("usage") or {}
        tokens = {
            "prompt": int(usage.get("prompt_tokens") or 0),
            "completion": int(usage.get("completion_tokens") or 0),
        }
        cost = float(reply.headers.get("x-bastion-cost-usd", "0") or 0)
        return Generation(text, answer.get("model"), tokens, cost, elapsed)

    # --- /query -----------------------------------------------------------------------

    async def query(self, principal: Principal, request: QueryIn) -> dict[str, Any]:
        run_id = new_run_id()
        policy = self.policy_store.policy
        config = policy.answers
        top_k = min(request.top_k or config.top_k, config.max_top_k)
        model = request.model or config.model
        prompt = self.prompts.get(QUERY_PROMPT)
        details: dict[str, Any] = {
            "run": run_id,
            "collection": request.collection,
            "top_k": top_k,
            "grounded": request.grounded,
            "model": model,
            "prompt": prompt.evidence(),
            "digests": {"question": self.digest("question", request.question)},
        }
        timings: dict[str, float] = {}
        started = time.perf_counter()
        try:
            passages = await self.retriever.search(
                request.collection, request.question, top_k, principal
            )
            timings["retrieval_ms"] = round((time.perf_counter() - started) * 1000, 3)
            details["chunks"] = [{"id": p.chunk_id, "score": round(p.score, 6)} for p in passages]
            best = max((relevance(request.question, p.text) for p in passages), default=0.0)
            details["relevance"] = best
            if request.grounded and best < config.min_relevance:
                found = [passage_view(p, n) for n, p in enumerate(passages[:3], start=1)]
                raise NotGrounded(
                    "nothing relevant was found for this question in "
                    + (
                        f"the collection {request.collection!r}"
                        if request.collection
                        else "the collections you may read"
                    )
                    + f" (best passage holds {best:.0%} of the question's content words; "
                    f"{config.min_relevance:.0%} needed); the best passages are attached. "
                    "Rephrase, name another collection, or send grounded: false",
                    found,
                )
            rendered = self.prompts.render(
                QUERY_PROMPT,
                {"question": request.question, "passages": prompt_passages(passages)},
            )
            generated = await self.generate(principal, rendered, model, run_id, "rag.query")
            timings["generation_ms"] = round(generated.latency_ms, 3)
            checking = time.perf_counter()
            checker = GroundingChecker(config.grounding_threshold)
            grounding = checker.check(generated.text, [p.text for p in passages])
            timings["grounding_ms"] = round((time.perf_counter() - checking) * 1000, 3)
        except BastionError as exc:
            await self._record(
                principal,
                request,
                details,
                "refused" if isinstance(exc, NotGrounded) else "failure",
                error=exc.code,
            )
            raise
        timings["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        cited = self._citations(generated.text, passages, grounding)
        details |= {
            "served_model": generated.model,
            "grounding": grounding.summary(),
            "tokens": generated.tokens,
            "cost_usd": round(generated.cost_usd, 9),
            "timings_ms": timings,
            "digests": details["digests"]
            | {
                "answer": self.digest("answer", generated.text),
                "passages": self.digest("passages", "\x00".join(p.text for p in passages)),
            },
        }
        flags = ("unsupported_sentences",) if grounding.unsupported else ()
        if grounding.invalid_citations:
            flags = (*flags, "invalid_citations")
        await self._record(
            principal,
            request,
            details,
            "success",
            flags=flags,
            content={"question": request.question, "answer": generated.text},
        )
        return {
            "answer": generated.text,
            "citations": cited,
            "grounding": {
                "supported": [v.as_dict() for v in grounding.supported],
                "unsupported": [v.as_dict() for v in grounding.unsupported],
                "score": grounding.score,
                "threshold": grounding.threshold,
                "invalid_citations": list(grounding.invalid_citations),
            },
            "request_id": current_request_id(),
            "run_id": run_id,
            "model": generated.model,
            "tokens": generated.tokens,
            "cost_usd": round(generated.cost_usd, 9),
            "prompt": prompt.evidence(),
            "timings_ms": timings,
        }

    @staticmethod
    def _citations(
        answer: str, passages: list[Passage], grounding: Grounding
    ) -> list[dict[str, Any]]:
        """The passages the answer's markers name, in number order; the snippet is the
        first evidence found in that passage, else its opening."""
        evidence: dict[int, str] = {}
        for verdict in grounding.verdicts:
            for e in verdict.evidence:
                evidence.setdefault(e.passage, _snip(e.text))
        used = sorted({n for n in citations(answer) if 1 <= n <= len(passages)})
        return [passage_view(passages[n - 1], n, evidence.get(n)) for n in used]

    async def _record(
        self,
        principal: Principal,
        request: QueryIn,
        details: dict[str, Any],
        outcome: str,
        *,
        error: str | None = None,
        flags: tuple[str, ...] = (),
        content: dict[str, str] | None = None,
    ) -> None:
        if error is not None:
            details = details | {"error_code": error}
        await self.ledger.append_async(
            EventIn(
                actor=principal.actor,
                action="rag.query",
                resource=f"collection:{request.collection or '*'}",
                outcome=outcome,
                details=details
                | {"key": principal.key_prefix, "role": principal.role, "team": principal.team},
                flags=tuple(sorted(flags)),
                content=content,
                store_content=self.policy_store.policy.audit.store_content,
                subject=principal.user,
            )
        )
