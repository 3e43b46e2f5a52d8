"""Is a model folder whole? Checks made before a version is registered.

An upload that stopped half way (a run killed while logging, a copy interrupted)
leaves a folder that MLflow registers without complaint and that fails only when
someone loads it in production. Before registering, Bastion reads the folder's
``MLmodel`` and checks, without loading or unpickling anything:

- ``MLmodel`` parses and names at least one flavor;
- every file a flavor names (``pickled_model``, ``model_path``, ``data``, the
  environment files …) is there;
- pickled models (scikit-learn's ``pickle`` and ``cloudpickle`` formats) run to their
  final STOP opcode, read with :mod:`pickletools`, which parses without executing;
- the files together are at least the ``model_size_bytes`` MLflow measured when it
  saved the model (it measures before writing the environment files, which only add).
"""

from __future__ import annotations

import pickletools
from pathlib import Path
from typing import Any

from bastion.registry.errors import ArtifactIncomplete, ArtifactNotFound

MLMODEL = "MLmodel"
#: Keys under which MLflow's flavors name a file or folder of the model.
FILE_KEYS = ("pickled_model", "model_path", "data", "model_data", "saved_model_dir")
PICKLE_FORMATS = frozenset({"pickle", "cloudpickle"})


def read_mlmodel(root: Path, where: str) -> dict[str, Any]:
    """The parsed ``MLmodel`` of a model folder, or an error saying what is wrong."""
    path = root / MLMODEL
    if not path.is_file():
        raise ArtifactNotFound(
            f"{where} has no MLmodel file: save the model with mlflow.<flavor>.save_model "
            "or log it with mlflow.<flavor>.log_model (or give a pickled model file)"
        )
    import yaml

    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ArtifactIncomplete(
            f"{where}: MLmodel cannot be read ({type(exc).__name__}); the upload may have "
            "stopped half way: log the model again"
        ) from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("flavors"), dict):
        raise ArtifactIncomplete(
            f"{where}: MLmodel names no flavor; the upload may have stopped half way: "
            "log the model again"
        )
    if not meta["flavors"]:
        raise ArtifactIncomplete(f"{where}: MLmodel names no flavor: log the model again")
    return meta


def _named_files(flavor: dict[str, Any]) -> list[str]:
    named = [flavor[k] for k in FILE_KEYS if isinstance(flavor.get(k), str)]
    env = flavor.get("env")
    if isinstance(env, dict):
        named += [v for v in env.values() if isinstance(v, str)]
    elif isinstance(env, str):
        named.append(env)
    return named


def _whole_pickle(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            for opcode, _arg, _pos in pickletools.genops(handle):
                if opcode.name == "STOP":
                    return True
    except (ValueError, EOFError, OSError):
        return False
    return False


def check_complete(root: Path, where: str) -> dict[str, Any]:
    """Raise :class:`ArtifactIncomplete` unless the folder holds a whole MLflow model."""
    meta = read_mlmodel(root, where)
    for name, flavor in meta["flavors"].items():
        if not isinstance(flavor, dict):
            continue
        for relative in _named_files(flavor):
            if not (root / relative).exists():
                raise ArtifactIncomplete(
                    f"{where}: its {name} flavor names {relative}, which is missing; the "
                    "upload may have stopped half way: log the model again"
                )
        pickled = flavor.get("pickled_model")
        if (
            isinstance(pickled, str)
            and flavor.get("serialization_format", "cloudpickle") in PICKLE_FORMATS
            and (root / pickled).is_file()
            and not _whole_pickle(root / pickled)
        ):
            raise ArtifactIncomplete(
                f"{where}: {pickled} is cut short (no end-of-pickle marker); the upload may "
                "have stopped half way: log the model again"
            )
    expected = meta.get("model_size_bytes")
    if isinstance(expected, int) and not isinstance(expected, bool):
        held = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != MLMODEL)
        if held < expected:
            raise ArtifactIncomplete(
                f"{where} holds {held} bytes but MLmodel says the model is {expected}; the "
                "upload may have stopped half way: log the model again"
            )
    return meta
