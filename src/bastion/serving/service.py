"""The prediction service: pick the version, check the payload, score, log, explain.

    service.predict("income", body, route_key=..., request_id=...)  -> Answer
    service.shadow(answer)                                          (after the response)
    service.explain_logged("income", request_id)                    -> list of explanations

Which version answers: ``version=`` pins a number and ``alias=`` (other than
``production``) pins an alias, both logged as arm ``pinned``; otherwise the
:class:`~bastion.serving.routing.TrafficPlan` decides (a rollout's canary, A/B arm and
shadows), and without a plan (or when it returns None) ``production`` answers.

Every scored row is a ``predictions`` row: one per row of the request, the request's id
for a single row and ``{request_id}.{i}`` for row ``i`` of a batch; a shadow's rows
under ``{row id}/shadow/v{n}``. A refused or failed request that reached a model is
logged too, as one row with ``outcome="error"`` and its error code, so error rates per
arm are in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.audit.events import canonical_json
from bastion.db import Database, utcnow
from bastion.errors import BastionError
from bastion.serving import payloads
from bastion.serving.batching import Batcher, PredictionFailed
from bastion.serving.batching import scored as _scored
from bastion.serving.config import FeatureRule, ServingPolicy
from bastion.serving.errors import (
    FeaturesNotKept,
    InvalidPayload,
    PredictionNotFound,
)
from bastion.serving.log import PredictionLog
from bastion.serving.repository import PredictionRepository
from bastion.serving.routing import Route, Routing, TrafficPlan

if TYPE_CHECKING:
    import pandas as pd

    from bastion.observability import Metrics
    from bastion.serving.cache import ModelCache, Served

log = logging.getLogger("bastion.serving")
PRODUCTION = "production"


@dataclass
class Answer:
    model: str
    version: int
    alias: str | None
    arm: str
    request_id: str
    predictions: list[Any]
    row_ids: list[str]
    explanations: list[dict[str, Any]] | None = None
    # For the shadows, scored after the answer is sent.
    shadows: tuple[Route, ...] = ()
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    route_key_digest: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "predictions": self.predictions,
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "request_id": self.request_id,
        }
        if len(self.row_ids) > 1:
            out["row_ids"] = self.row_ids
        if self.explanations is not None:
            out["explanations"] = self.explanations
        return out


def row_ids(request_id: str, n: int) -> list[str]:
    return [request_id] if n == 1 else [f"{request_id}.{i}" for i in range(n)]


def kept_features(row: dict[str, Any], rule: FeatureRule) -> dict[str, Any] | None:
    if rule == "full":
        return row
    if rule == "digest":
        return None
    return {k: row.get(k) for k in rule}


class PredictionService:
    def __init__(
        self,
        db: Database,
        cache: ModelCache,
        log_writer: PredictionLog,
        *,
        policy: Callable[[], ServingPolicy],
        digest_key: bytes,
        plan: TrafficPlan | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.cache = cache
        self.log = log_writer
        self.policy = policy
        self.plan = plan
        self.metrics = metrics
        self._key = digest_key
        self._batchers: dict[tuple[str, int], Batcher] = {}

    def close(self) -> None:
        self.log.close()

    # -- choosing the version ----------------------------------------------------------
    def routing(
        self, model: str, *, alias: str | None, version: int | None, route_key: str
    ) -> Routing:
        if version is not None:
            return Routing(Route(version, "pinned", None))
        if alias is not None and alias != PRODUCTION:
            return Routing(Route(0, "pinned", alias))
        planned = self.plan.route(model, route_key) if self.plan is not None else None
        if planned is not None:
            return planned
        return Routing(Route(0, PRODUCTION, PRODUCTION))

    def fast_target(self, model: str, route: Route) -> Served | None:
        """The loaded model for ``route`` without blocking, or None (then call
        :meth:`target` in a worker thread)."""
        if route.version:
            return self.cache.loaded(model, route.version)
        assert route.alias is not None
        return self.cache.current(model, route.alias)

    def target(self, model: str, route: Route) -> Served:
        if route.version:
            return self.cache.get(model, route.version)
        assert route.alias is not None
        served = self.cache.resolve(model, route.alias)
        if self.metrics is not None:
            self.metrics.serving_version.labels(model, route.alias).set(served.version)
        return served

    # -- scoring -----------------------------------------------------------------------
    def predict(
        self,
        served: Served,
        route: Route,
        body: Any,
        *,
        request_id: str,
        route_key: str,
        explain: bool = False,
        shadows: Sequence[Route] = (),
    ) -> Answer:
        """Score in this thread (explanations, shadows, callers without a loop)."""
        started = time.perf_counter()
        key_digest = self.digest(route_key)
        try:
            rows = self._rows(served, body)
            frame = payloads.frame(rows, served.schema)
            predictions, scores = _scored(served, frame)
            explanations = self._explain(served, frame) if explain else None
        except BastionError as exc:
            self._failed(served, route, request_id, key_digest, exc, started)
            raise
        return self._answered(
            served,
            route,
            rows,
            predictions,
            scores,
            explanations,
            request_id,
            key_digest,
            started,
            shadows,
        )

    async def predict_async(
        self,
        served: Served,
        route: Route,
        body: Any,
        *,
        request_id: str,
        route_key: str,
        shadows: Sequence[Route] = (),
    ) -> Answer:
        """Score on the event loop, batched with the requests for the same version that
        arrive meanwhile (see :class:`~bastion.serving.batching.Batcher`)."""
        started = time.perf_counter()
        key_digest = self.digest(route_key)
        try:
            rows = self._rows(served, body)
            predictions, scores = await self.batcher(served).score(rows)
        except BastionError as exc:
            self._failed(served, route, request_id, key_digest, exc, started)
            raise
        return self._answered(
            served,
            route,
            rows,
            predictions,
            scores,
            None,
            request_id,
            key_digest,
            started,
            shadows,
        )

    def batcher(self, served: Served) -> Batcher:
        key = (served.name, served.version)
        found = self._batchers.get(key)
        if found is None or found.served is not served:
            found = self._batchers[key] = Batcher(served)
        return found

    def _rows(self, served: Served, body: Any) -> list[dict[str, Any]]:
        rows = payloads.records_of(body)
        payloads.check(rows, served.schema)
        return rows

    def _answered(
        self,
        served: Served,
        route: Route,
        rows: list[dict[str, Any]],
        predictions: list[Any],
        scores: list[float] | None,
        explanations: list[dict[str, Any]] | None,
        request_id: str,
        key_digest: str,
        started: float,
        shadows: Sequence[Route],
    ) -> Answer:
        latency_ms = (time.perf_counter() - started) * 1000
        ids = row_ids(request_id, len(rows))
        self._log_rows(served, route.arm, ids, rows, predictions, scores, key_digest, latency_ms)
        if self.metrics is not None:
            self.metrics.predictions.labels(served.name, route.arm, "ok").inc()
            self.metrics.prediction_duration.labels(served.name, route.arm).observe(
                latency_ms / 1000
            )
        return Answer(
            model=served.name,
            version=served.version,
            alias=route.alias,
            arm=route.arm,
            request_id=request_id,
            predictions=predictions,
            row_ids=ids,
            explanations=explanations,
            shadows=tuple(shadows),
            rows=rows,
            route_key_digest=key_digest,
        )

    def shadow(self, answer: Answer) -> None:
        """Score the answer's rows on each shadow version and log them; never raises."""
        for route in answer.shadows:
            started = time.perf_counter()
            ids = [f"{rid}/shadow/v{route.version}" for rid in answer.row_ids]
            try:
                served = (
                    self.cache.get(answer.model, route.version)
                    if route.version
                    else self.cache.resolve(answer.model, route.alias or PRODUCTION)
                )
                payloads.check(answer.rows, served.schema)
                frame = payloads.frame(answer.rows, served.schema)
                predictions, scores = _scored(served, frame)
            except Exception as exc:
                code = exc.code if isinstance(exc, BastionError) else "prediction_failed"
                self.log.append(
                    self._row(
                        ids[0],
                        answer.model,
                        route.version,
                        "shadow",
                        (time.perf_counter() - started) * 1000,
                        outcome="error",
                        error_code=code,
                        features_digest=self._features_digest(answer.rows[0]),
                        route_key_digest=answer.route_key_digest,
                    )
                )
                if self.metrics is not None:
                    self.metrics.predictions.labels(answer.model, "shadow", "error").inc()
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            self._log_rows(
                served,
                "shadow",
                ids,
                answer.rows,
                predictions,
                scores,
                answer.route_key_digest,
                latency_ms,
            )
            if self.metrics is not None:
                self.metrics.predictions.labels(answer.model, "shadow", "ok").inc()

    # -- explanations ------------------------------------------------------------------
    def _explain(self, served: Served, frame: pd.DataFrame) -> list[dict[str, Any]]:
        return served.explain(frame)

    def _logged(self, model: str, request_id: str) -> tuple[int, Any] | None:
        with self.db.session() as session:
            row = PredictionRepository(session).prediction(model, request_id)
            return None if row is None else (row.version, row.features)

    def explain_logged(self, model: str, request_id: str) -> dict[str, Any]:
        found = self._logged(model, request_id)
        if found is None and self.log.flush(10.0):
            found = self._logged(model, request_id)  # answered a moment ago, now written
        if found is None:
            raise PredictionNotFound(
                f"no logged prediction {request_id!r} of model {model!r}: check the id "
                "(row i of a batch is `{request_id}.{i}`)"
            )
        version, features = found
        served = self.cache.get(model, version)
        if features is None:
            raise FeaturesNotKept(
                f"prediction {request_id!r} kept only a digest of its features (the policy's "
                "serving.features rule): it cannot be explained again"
            )
        names = [c.name for c in served.schema] if served.schema else list(features)
        missing = [n for n in names if n not in features]
        if missing:
            raise FeaturesNotKept(
                f"prediction {request_id!r} kept only some of its features (not "
                f"{', '.join(missing[:5])}): it cannot be explained again"
            )
        frame = payloads.frame([features], served.schema)
        return {
            "request_id": request_id,
            "model": model,
            "version": version,
            "explanations": self._explain(served, frame),
        }

    # -- the log -----------------------------------------------------------------------
    def digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def _features_digest(self, row: dict[str, Any]) -> str:
        return self.digest(canonical_json(row))

    def _row(
        self,
        request_id: str,
        model: str,
        version: int,
        arm: str,
        latency_ms: float,
        **values: Any,
    ) -> dict[str, Any]:
        base: dict[str, Any] = {
            "request_id": request_id,
            "model": model,
            "version": version,
            "arm": arm,
            "created_at": utcnow(),
            "latency_ms": latency_ms,
            "outcome": "ok",
            "error_code": None,
            "prediction": None,
            "score": None,
            "features": None,
            "route_key_digest": None,
        }
        base.update(values)
        return base

    def _log_rows(
        self,
        served: Served,
        arm: str,
        ids: list[str],
        rows: list[dict[str, Any]],
        predictions: list[Any],
        scores: list[float] | None,
        key_digest: str | None,
        latency_ms: float,
    ) -> None:
        rule = self.policy().features_for(served.name)
        for i, rid in enumerate(ids):
            self.log.append(
                self._row(
                    rid,
                    served.name,
                    served.version,
                    arm,
                    latency_ms,
                    prediction=predictions[i] if i < len(predictions) else None,
                    score=scores[i] if scores is not None else None,
                    features=kept_features(rows[i], rule),
                    features_digest=self._features_digest(rows[i]),
                    route_key_digest=key_digest,
                )
            )

    def _failed(
        self,
        served: Served,
        route: Route,
        request_id: str,
        key_digest: str,
        exc: BastionError,
        started: float,
    ) -> None:
        digest = self.digest(request_id)  # the body was not usable: digest the id
        self.log.append(
            self._row(
                request_id,
                served.name,
                served.version,
                route.arm,
                (time.perf_counter() - started) * 1000,
                outcome="error",
                error_code=exc.code,
                features_digest=digest,
                route_key_digest=key_digest,
            )
        )
        if self.metrics is not None:
            self.metrics.predictions.labels(served.name, route.arm, "error").inc()
            self.metrics.prediction_errors.labels(served.name, exc.code).inc()


__all__ = ["Answer", "InvalidPayload", "PredictionFailed", "PredictionService"]
