"""The registry's one door to MLflow: runs, logged models, versions and aliases.

MLflow is imported on first use (about three seconds) and its errors become Bastion
errors with stable codes. Bastion logs models it is handed as files into an experiment
of its own whose artifacts live under the Bastion home (MLflow's default is ``./mlruns``
relative to wherever the process happens to run).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from bastion.registry.errors import ArtifactNotFound, MlflowUnavailable, RunNotFound

EXPERIMENT = "bastion"
#: MLflow aliases that Bastion owns: moving one outside Bastion is drift.
MANAGED_ALIASES = ("staging", "production")


@dataclass(frozen=True)
class RunEvidence:
    run_id: str
    experiment_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    dataset: dict[str, Any] | None
    training_seconds: float | None
    author: str | None
    code_version: str | None
    model_uri: str
    model_dir: Path | None  # local artifact folder when the store is on this machine
    status: str = "FINISHED"  # RUNNING, SCHEDULED, FINISHED, FAILED or KILLED
    tags: dict[str, str] = field(default_factory=dict)


def local_store(tracking_uri: str) -> bool:
    """True for a store on this machine (MLflow's SQLite or file store), whose artifacts
    Bastion keeps under its home; a tracking server keeps artifacts where it decides."""
    scheme = urlparse(tracking_uri).scheme
    return scheme in ("", "file", "sqlite") or len(scheme) == 1  # "C:" on Windows


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        return path if path.exists() else None
    return None


def _dataset(run: Any) -> dict[str, Any] | None:
    import json

    inputs = getattr(run, "inputs", None)
    found = list(getattr(inputs, "dataset_inputs", None) or [])
    if not found:
        return None
    # The training set when the run says which one it is; otherwise the first.
    chosen = next(
        (
            d
            for d in found
            if any(t.key == "mlflow.data.context" and t.value == "training" for t in d.tags)
        ),
        found[0],
    )
    ds = chosen.dataset
    rows = None
    with contextlib.suppress(ValueError, TypeError):
        rows = json.loads(ds.profile or "{}").get("num_rows")
    schema: dict[str, str] = {}
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        for col in json.loads(ds.schema or "{}").get("mlflow_colspec", []):
            schema[str(col.get("name"))] = str(col.get("type"))
    return {
        "name": ds.name,
        "digest": ds.digest,
        "digest_kind": "mlflow",
        "rows": rows,
        "schema": schema,
        "source": ds.source_type,
    }


class MlflowStore:
    def __init__(self, tracking_uri: str, artifact_root: Path) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self._client: Any = None
        self._lock = threading.Lock()
        self._experiment_id: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock, self._errors("open the MLflow store"):
                if self._client is None:
                    from bastion.settings import quiet_mlflow

                    quiet_mlflow()
                    from mlflow import MlflowClient

                    # MLflow sets its logger to INFO when imported; its notes are noise here.
                    logging.getLogger("mlflow").setLevel(logging.WARNING)

                    self._client = MlflowClient(
                        tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
                    )
        return self._client

    def close(self) -> None:
        """Drop the client and close its database connections (a SQL tracking store's
        engine; MLflow keeps no other handle). Used again, the store opens a new client."""
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        store = getattr(getattr(client, "_tracking_client", None), "store", None)
        engine = getattr(store, "engine", None)
        with contextlib.suppress(Exception):  # closing must never fail a shutdown
            if engine is not None:
                engine.dispose()

    @contextlib.contextmanager
    def _errors(self, doing: str, *, run_id: str | None = None) -> Iterator[None]:
        try:
            yield
        except (RunNotFound, ArtifactNotFound):
            raise
        except Exception as exc:
            code = getattr(exc, "error_code", "")
            if run_id is not None and code == "RESOURCE_DOES_NOT_EXIST":
                raise RunNotFound(
                    f"MLflow has no run {run_id!r} at {self.tracking_uri}: check the run id "
                    "and BASTION_MLFLOW_TRACKING_URI"
                ) from exc
            raise MlflowUnavailable(
                f"could not {doing} in MLflow at {self.tracking_uri} "
                f"({type(exc).__name__}: {str(exc)[:300]})"
            ) from exc

    # -- runs -----------------------------------------------------------------------

    def run_evidence(self, run_id: str, artifact_path: str | None = None) -> RunEvidence:
        with self._errors("read the run", run_id=run_id):
            run = self.client.get_run(run_id)
        with self._errors("find the run's model"):
            model_uri, model_dir = self._run_model(run, artifact_path)
        info, tags = run.info, dict(run.data.tags)
        metrics = {k: float(v) for k, v in run.data.metrics.items()}
        # Training time as the run logged it; otherwise the run's length (which also
        # counts evaluating and logging).
        seconds = metrics.get("training_seconds")
        if seconds is None and info.start_time and info.end_time:
            seconds = max(0.0, (info.end_time - info.start_time) / 1000)
        return RunEvidence(
            run_id=info.run_id,
            experiment_id=info.experiment_id,
            params=dict(run.data.params),
            metrics=metrics,
            dataset=_dataset(run),
            training_seconds=seconds,
            author=tags.get("mlflow.user"),
            code_version=tags.get("mlflow.source.git.commit"),
            model_uri=model_uri,
            model_dir=model_dir,
            status=str(info.status),
            tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        )

    def _run_model(self, run: Any, artifact_path: str | None) -> tuple[str, Path | None]:
        run_id = run.info.run_id
        if artifact_path is None:
            # MLflow 3: the run's logged models (``log_model(name=...)``).
            outputs = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
            ids = [o.model_id for o in outputs]
            if not ids:
                found = self.client.search_logged_models(
                    experiment_ids=[run.info.experiment_id],
                    filter_string=f"source_run_id = '{run_id}'",
                )
                ids = [m.model_id for m in found]
            if len(ids) > 1:
                raise ArtifactNotFound(
                    f"run {run_id} logged {len(ids)} models: name one with --artifact-path"
                )
            if ids:
                logged = self.client.get_logged_model(ids[0])
                return f"models:/{logged.model_id}", _local_path(logged.artifact_location)
            artifact_path = "model"
        listed = [f.path for f in self.client.list_artifacts(run_id, artifact_path)]
        if f"{artifact_path}/MLmodel" not in listed and "MLmodel" not in listed:
            raise ArtifactNotFound(
                f"run {run_id} has no MLflow model at {artifact_path!r}: log one with "
                "mlflow.<flavor>.log_model or name its folder with --artifact-path"
            )
        root = _local_path(run.info.artifact_uri)
        local = root / artifact_path if root is not None else None
        return f"runs:/{run_id}/{artifact_path}", local

    def local_dir(self, uri: str) -> Path | None:
        """The local folder of a model URI from :meth:`run_evidence`, when on this machine."""
        with self._errors("locate the model"):
            if uri.startswith("models:/m-"):
                logged = self.client.get_logged_model(uri.removeprefix("models:/"))
                return _local_path(logged.artifact_location)
            if uri.startswith("runs:/"):
                run_id, _, sub = uri.removeprefix("runs:/").partition("/")
                root = _local_path(self.client.get_run(run_id).info.artifact_uri)
                return root / sub if root is not None else None
        return None

    @contextlib.contextmanager
    def model_files(self, uri: str, local: Path | None) -> Iterator[Path]:
        """A local folder holding the model's files (downloaded when remote)."""
        if local is not None and local.is_dir():
            yield local
            return
        from bastion.settings import quiet_mlflow

        quiet_mlflow()
        with tempfile.TemporaryDirectory(prefix="bastion-model-") as tmp:
            with self._errors("download the model"):
                import mlflow.artifacts

                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=self.tracking_uri
                )
            yield Path(path)

    # -- logging a model Bastion was handed -------------------------------------------

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            with self._errors("create Bastion's experiment"):
                found = self.client.get_experiment_by_name(EXPERIMENT)
                if found is not None:
                    self._experiment_id = str(found.experiment_id)
                elif local_store(self.tracking_uri):
                    self.artifact_root.mkdir(parents=True, exist_ok=True)
                    self._experiment_id = str(
                        self.client.create_experiment(
                            EXPERIMENT, artifact_location=self.artifact_root.resolve().as_uri()
                        )
                    )
                else:
                    self._experiment_id = str(self.client.create_experiment(EXPERIMENT))
        return self._experiment_id

    def log_model_folder(
        self,
        folder: Path,
        *,
        params: dict[str, str],
        metrics: dict[str, float],
        tags: dict[str, str],
    ) -> RunEvidence:
        """Log a saved MLflow model folder as the artifact of a new run."""
        experiment = self.experiment_id()
        with self._errors("log the model"):
            run = self.client.create_run(experiment, tags=tags, run_name="bastion-register")
            run_id = run.info.run_id
            for key, value in params.items():
                self.client.log_param(run_id, key, value)
            for key, number in metrics.items():
                self.client.log_metric(run_id, key, number)
            self.client.log_artifacts(run_id, str(folder), "model")
            self.client.set_terminated(run_id)
        return self.run_evidence(run_id, "model")

    # -- the model registry -------------------------------------------------------------

    def create_version(
        self, name: str, source: str, run_id: str | None, tags: dict[str, str], description: str
    ) -> int:
        with self._errors("register the model version"):
            from mlflow.exceptions import MlflowException

            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            model_id = None
            if source.startswith("models:/m-"):
                # MLflow's SQL registry resolves ``models:/<id>`` through the process-wide
                # tracking URI, not this client's; hand it the artifact location instead.
                model_id = source.removeprefix("models:/")
                source = self.client.get_logged_model(model_id).artifact_location
            version = self.client.create_model_version(
                name,
                source,
                run_id=run_id,
                tags=tags,
                description=description or None,
                model_id=model_id,
            )
            return int(version.version)

    def unrecorded_version(
        self, name: str, digest: str, known: set[int]
    ) -> tuple[int, str | None, str | None] | None:
        """The oldest version of ``name`` tagged with ``digest`` that is not in ``known``
        (made by a registration that died before recording it): number, run id and the
        ``bastion.source`` tag."""
        with self._errors("look for the model's versions"):
            found = self.client.search_model_versions(
                f"name = '{name}' AND tags.`bastion.artifact_sha256` = '{digest}'"
            )
        for mv in sorted(found, key=lambda v: int(v.version)):
            if int(mv.version) not in known:
                return int(mv.version), mv.run_id or None, (mv.tags or {}).get("bastion.source")
        return None

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        with self._errors("tag the model version"):
            self.client.set_model_version_tag(name, str(version), key, value)

    def aliases(self, name: str) -> dict[str, int]:
        with self._errors("read the model's aliases"):
            from mlflow.exceptions import MlflowException

            try:
                model = self.client.get_registered_model(name)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return {}
                raise
            return {alias: int(v) for alias, v in (model.aliases or {}).items()}

    def set_alias(self, name: str, alias: str, version: int) -> None:
        with self._errors(f"move the alias {alias!r}"):
            self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        with self._errors(f"remove the alias {alias!r}"):
            from mlflow.exceptions import MlflowException

            try:
                self.client.delete_registered_model_alias(name, alias)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise

    def version_source(self, name: str, version: int) -> str:
        with self._errors("read the model version"):
            return str(self.client.get_model_version(name, str(version)).source)


def save_sklearn_model(model: Any, folder: Path, *, inputs: Any = None) -> None:
    """Save a fitted scikit-learn model as an MLflow model folder, offline.

    The requirements are written out rather than inferred: inference shells out to the
    package manager, which is slow and depends on the directory the process runs in.
    ``inputs`` (a DataFrame of the model's input columns, the training rows say) gives
    the model a signature, which serving checks payloads against, and a small input
    example, which explanations use as their background.
    """
    from bastion.settings import quiet_mlflow

    quiet_mlflow()
    import warnings

    import cloudpickle  # type: ignore[import-untyped]
    import sklearn

    if folder.exists():
        shutil.rmtree(folder)
    # Cloudpickle is chosen (skops refuses classes it does not know, such as the
    # example's post-processor); MLflow's warning about it would only repeat that.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # MLflow's pyfunc, loaded on first save, warns about MLflow's own type hints.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
        import mlflow.sklearn

        extra: dict[str, Any] = {}
        if inputs is not None:
            extra["signature"] = signature_of(inputs)
            extra["input_example"] = inputs.sample(min(100, len(inputs)), random_state=0)
        mlflow.sklearn.save_model(
            model,
            str(folder),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            **extra,
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"cloudpickle=={cloudpickle.__version__}",
            ],
        )


def signature_of(inputs: Any) -> Any:
    """An MLflow signature for a DataFrame's columns: types from the first thousand rows
    (MLflow tests every cell otherwise), and a column that holds a missing value anywhere
    marked optional."""
    import warnings

    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    with warnings.catch_warnings():  # its note on integer columns and missing values
        warnings.simplefilter("ignore", UserWarning)
        inferred = _infer_schema(inputs.head(1000).dropna())
    nullable = set(inputs.columns[inputs.isna().any()])
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec(c.type, c.name, required=c.name not in nullable)  # type: ignore[arg-type]
                for c in inferred.inputs
            ]
        )
    )
