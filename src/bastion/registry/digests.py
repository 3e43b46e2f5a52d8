"""SHA-256 digests of model artifacts and training data.

A file's digest is the SHA-256 of its bytes. A directory's (an MLflow model) is the
SHA-256 of one line per file, in path order: ``<relative posix path>\\0<file sha256>\\n``,
so renaming, adding, removing or editing any file changes it. MLflow writes a
``registered_model_meta`` file into copies it downloads through ``models:/`` URIs; it
is not part of the artifact and is left out.

Two digests of a model folder are kept. :func:`tree_sha256` covers every byte as
stored: ``verify`` compares it to find files changed after registration.
:func:`model_sha256`, the key that makes registration idempotent, reads ``MLmodel``
without the stamps MLflow writes into it on every save (``model_uuid``,
``utc_time_created``, ``run_id``, ``model_id``, ``artifact_path``): the same fitted
model logged twice is one version, not two.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bastion.registry.artifacts import MLMODEL, check_complete
from bastion.registry.errors import ArtifactNotFound, InvalidEvidence

IGNORED = frozenset({"registered_model_meta"})
#: What MLflow stamps into MLmodel on every save or log: not part of the model.
MLMODEL_STAMPS = frozenset(
    {"model_uuid", "utc_time_created", "run_id", "model_id", "artifact_path"}
)
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tree(root: Path, mlmodel: str | None = None) -> str:
    lines = hashlib.sha256()
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] not in IGNORED
    )
    if not files:
        raise ArtifactNotFound(f"{root} holds no files: point at a saved model")
    for path in files:
        relative = path.relative_to(root).as_posix()
        digest = mlmodel if mlmodel is not None and relative == MLMODEL else file_sha256(path)
        lines.update(f"{relative}\0{digest}\n".encode())
    return lines.hexdigest()


def tree_sha256(root: Path) -> str:
    """Every file's bytes, as stored."""
    return _tree(root)


def model_sha256(root: Path, where: str) -> str:
    """The model's identity: the tree with MLmodel's per-save stamps left out. Checks
    first that the folder holds a whole model (see :mod:`bastion.registry.artifacts`)."""
    meta = check_complete(root, where)
    kept = {k: v for k, v in meta.items() if k not in MLMODEL_STAMPS}
    return _tree(root, json_sha256(kept))


def artifact_sha256(path: Path) -> str:
    if path.is_dir():
        return model_sha256(path, str(path))
    if path.is_file():
        return file_sha256(path)
    raise ArtifactNotFound(f"no model at {path}: give a saved model file or an MLflow model folder")


def json_sha256(payload: Any) -> str:
    import json

    body = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()


def dataset_summary(path: Path, *, name: str | None = None) -> dict[str, Any]:
    """Digest, row count and column types of a training-data file (.csv, .parquet)."""
    if not path.is_file():
        raise InvalidEvidence(f"no training data at {path}: give a .csv or .parquet file")
    from bastion.monitoring.errors import MonitoringError
    from bastion.monitoring.io import open_table

    try:
        table = open_table(path)
        rows = 0
        schema: dict[str, str] = {}
        for batch in table.batches():
            if not schema:
                schema = {str(c): str(t) for c, t in batch.dtypes.items()}
            rows += len(batch)
    except MonitoringError as exc:
        raise InvalidEvidence(f"cannot read the training data {path}: {exc.message}") from exc
    return {
        "name": name or path.name,
        "digest": file_sha256(path),
        "digest_kind": "sha256",
        "rows": rows,
        "schema": schema,
        "source": str(path),
    }
