"""Loaded models: each version loaded once, and the version behind each alias swapped
atomically when the alias moves.

A request for ``income@production`` looks up what it served last (one dict read, on the
event loop). The registry's alias moves in this process call :meth:`ModelCache.invalidate`
(``RegistryParts.on_alias_moved``), so the very next request reads the aliases again;
moves made by another process (another replica, MLflow's own UI) are noticed by reading
them every ``alias_ttl_s``. When one has moved, the new version is loaded *first* and
only then put in place by one dict assignment, so no request sees half a model and none
waits on a load it did not ask for twice. A version that fails to load is remembered as
failed (and retried after ``retry_after_s``): the alias keeps serving the version it
had, and a request that asks for the broken version by number gets
:class:`ModelLoadFailed` saying why.

Scoring calls the flavour's own model when it is scikit-learn (the same ``predict``
that MLflow's pyfunc wrapper calls, without its schema enforcement, which
:mod:`bastion.serving.payloads` has done already) and ``pyfunc.predict`` otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bastion.errors import NotFound
from bastion.serving import payloads
from bastion.serving.errors import ModelLoadFailed, NotExplainable, NothingServed
from bastion.serving.payloads import Column

if TYPE_CHECKING:
    import pandas as pd

    from bastion.serving.compiled import CompiledPipeline
    from bastion.serving.explaining import CodedModel

log = logging.getLogger("bastion.serving")


class ModelSource(Protocol):
    """Where models come from: the registry's MLflow store in the server."""

    def aliases(self, name: str) -> dict[str, int]: ...

    def model_dir(self, name: str, version: int) -> Path: ...


@dataclass
class Served:
    """One loaded version."""

    name: str
    version: int
    pyfunc: Any
    schema: tuple[Column, ...] | None
    raw: Any = None  # the scikit-learn estimator, when that is the flavour
    background: pd.DataFrame | None = None
    #: The pipeline with its preprocessing compiled (:mod:`bastion.serving.compiled`).
    compiled: CompiledPipeline | None = None
    _coded: CodedModel | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def predict_records(
        self, records: list[dict[str, Any]]
    ) -> tuple[list[Any], list[float] | None]:
        """:meth:`predict` for records already checked against :attr:`schema`: through
        the compiled pipeline when there is one, else as a DataFrame."""
        if self.compiled is None:
            return self.predict(payloads.frame(records, self.schema))
        return self.compiled.predict(records)

    def predict(self, rows: pd.DataFrame) -> tuple[list[Any], list[float] | None]:
        """Predictions (as JSON values) and, for a binary classifier, the positive
        class's probability."""
        if self.raw is None:
            return _jsonable(self.pyfunc.predict(rows)), None
        model, data = self.raw, rows
        if _is_pipeline(model) and len(model.steps) > 1:
            # What Pipeline.predict does, once for both answers: transform, then the
            # final step's predict and predict_proba on the same transformed rows.
            data = model[:-1].transform(rows)
            model = model[-1]
        return self._final(model, data)

    @staticmethod
    def _final(model: Any, data: Any) -> tuple[list[Any], list[float] | None]:
        import numpy as np

        predictions = _jsonable(model.predict(data))
        scores = None
        proba = getattr(model, "predict_proba", None)
        if proba is not None and len(getattr(model, "classes_", ())) == 2:
            scores = [float(s) for s in np.asarray(proba(data))[:, 1]]
        return predictions, scores

    def explain(self, rows: pd.DataFrame) -> list[dict[str, Any]]:
        """Each row's SHAP contributions, over the model's own input example (its
        background; the rows themselves when it has none)."""
        from bastion.monitoring.errors import MonitoringError
        from bastion.serving.explaining import build_explainer

        # Built for each call: SHAP's permutation sampling draws from the explainer's
        # random state, and a fresh one gives a row the same answer every time.
        background = self.background if self.background is not None else rows
        model = self.raw if self.raw is not None else _PyfuncAdapter(self.pyfunc)
        with self._lock:
            try:
                explainer, coded = build_explainer(model, background, self._coded)
            except MonitoringError as exc:
                raise NotExplainable(exc.message) from exc
            self._coded = coded
        data = coded.encode(rows).astype("float64") if coded is not None else rows
        try:
            explained = explainer.explain(data, top_k=5)
        except MonitoringError as exc:
            raise NotExplainable(exc.message) from exc
        return [
            {
                "base_value": r.base_value,
                "output": explainer.output,
                "value": r.prediction,
                "contributions": {c.feature: c.shap for c in r.contributions},
            }
            for r in explained
        ]


class _PyfuncAdapter:
    def __init__(self, pyfunc: Any) -> None:
        self.pyfunc = pyfunc

    def predict(self, rows: Any) -> Any:
        return self.pyfunc.predict(rows)


def _is_pipeline(model: Any) -> bool:
    return type(model).__name__ == "Pipeline" and type(model).__module__.startswith("sklearn.")


def _jsonable(out: Any) -> list[Any]:
    import numpy as np
    import pandas as pd

    if isinstance(out, pd.DataFrame):
        return [dict(r) for r in out.to_dict(orient="records")]
    if isinstance(out, pd.Series):
        return list(out.tolist())
    if isinstance(out, np.ndarray):
        return list(out.tolist())
    return list(out)


def load_served(name: str, version: int, path: Path) -> Served:
    """Load a model folder with MLflow; its signature as columns, its input example."""
    from bastion.settings import quiet_mlflow

    quiet_mlflow()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow.pyfunc

        pyfunc = mlflow.pyfunc.load_model(str(path))
    meta = pyfunc.metadata
    schema = None
    signature = meta.get_input_schema()
    if signature is not None and signature.has_input_names():
        schema = tuple(
            Column(c.name, str(getattr(c.type, "name", c.type)), bool(getattr(c, "required", True)))
            for c in signature.inputs
        )
    raw = None
    if pyfunc.loader_module == "mlflow.sklearn":
        raw = pyfunc.get_raw_model()
    background = None
    try:
        example = meta.load_input_example(str(path))
    except Exception:  # an example MLflow cannot read back is only a lost background
        example = None
    if example is not None:
        import pandas as pd

        if isinstance(example, pd.DataFrame) and not example.empty:
            background = example
    compiled = None
    if raw is not None:
        from bastion.serving.compiled import compile_pipeline

        compiled = compile_pipeline(raw, schema, background)
    return Served(name, version, pyfunc, schema, raw, background, compiled)


@dataclass
class _Aliases:
    read_at: float
    versions: dict[str, int]


class ModelCache:
    def __init__(
        self,
        source: ModelSource,
        *,
        alias_ttl_s: Callable[[], float] | float = 2.0,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        loader: Callable[[str, int, Path], Served] = load_served,
        on_load: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.source = source
        self._ttl = alias_ttl_s if callable(alias_ttl_s) else (lambda: float(alias_ttl_s))
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.loader = loader
        self.on_load = on_load or (lambda name, version, outcome: None)
        self._versions: dict[tuple[str, int], Served] = {}
        self._failed: dict[tuple[str, int], tuple[float, str]] = {}
        self._aliases: dict[str, _Aliases] = {}
        self._moves: dict[str, int] = {}  # invalidations per model, to drop stale reads
        self._serving: dict[tuple[str, str], Served] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._guard = threading.Lock()

    # -- the fast path, safe on the event loop ------------------------------------------
    def current(self, name: str, alias: str) -> Served | None:
        """What ``alias`` serves now, when its aliases were read within the TTL."""
        read = self._aliases.get(name)
        if read is None or self.clock() - read.read_at > self._ttl():
            return None
        served = self._serving.get((name, alias))
        if served is None or read.versions.get(alias) != served.version:
            return None
        return served

    def loaded(self, name: str, version: int) -> Served | None:
        return self._versions.get((name, version))

    # -- blocking: run in a worker thread ----------------------------------------------
    def resolve(self, name: str, alias: str) -> Served:
        """The version behind ``alias``: aliases re-read when stale, a moved alias's new
        version loaded before it replaces the old one."""
        fresh = self.current(name, alias)
        if fresh is not None:
            return fresh
        versions = self._read_aliases(name)
        target = versions.get(alias)
        now_serving = self._serving.get((name, alias))
        if target is None:
            self._serving.pop((name, alias), None)
            raise NothingServed(
                f"model {name!r} has no version behind the alias {alias!r}: have one approved "
                f"(bastion models request-promotion {name} VERSION --to {alias}, then "
                "bastion models approve) or ask for ?version="
            )
        if now_serving is not None and now_serving.version == target:
            return now_serving
        try:
            served = self.get(name, target)
        except ModelLoadFailed as exc:
            if now_serving is None:
                raise
            log.error(
                "alias moved to a version that does not load; the previous version keeps serving",
                extra={
                    "model": name,
                    "alias": alias,
                    "version": target,
                    "serving": now_serving.version,
                    "error": exc.message,
                },
            )
            return now_serving
        self._serving[(name, alias)] = served  # the swap: one assignment
        if now_serving is not None:
            log.info(
                "alias moved; now serving the new version",
                extra={"model": name, "alias": alias, "version": target},
            )
        return served

    def get(self, name: str, version: int) -> Served:
        """Version ``version``, loaded once; :class:`ModelLoadFailed` when it does not load."""
        key = (name, version)
        served = self._versions.get(key)
        if served is not None:
            return served
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            served = self._versions.get(key)
            if served is not None:
                return served
            failed = self._failed.get(key)
            if failed is not None and self.clock() - failed[0] < self.retry_after_s:
                raise ModelLoadFailed(failed[1], model=name, version=version)
            try:
                path = self.source.model_dir(name, version)
                served = self.loader(name, version, path)
            except NotFound:  # no such version: not a load failure
                raise
            except Exception as exc:
                message = (
                    f"{name} v{version} could not be loaded ({type(exc).__name__}: "
                    f"{str(exc)[:300]}); it is not served: fix or re-register it"
                )
                self._failed[key] = (self.clock(), message)
                self.on_load(name, version, "error")
                raise ModelLoadFailed(message, model=name, version=version) from exc
            self._failed.pop(key, None)
            self._versions[key] = served
            self.on_load(name, version, "ok")
            return served

    def invalidate(self, name: str) -> None:
        """Read ``name``'s aliases again on the next request (an alias was just moved)."""
        with self._guard:
            self._moves[name] = self._moves.get(name, 0) + 1
            self._aliases.pop(name, None)

    def _read_aliases(self, name: str) -> dict[str, int]:
        moves = self._moves.get(name, 0)
        versions = self.source.aliases(name)
        with self._guard:
            # A read that began before a move may have seen the old aliases: it answers
            # its own request, but is not kept for the next ones.
            if self._moves.get(name, 0) == moves:
                self._aliases[name] = _Aliases(self.clock(), dict(versions))
        return versions
