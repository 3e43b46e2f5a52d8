"""The compiled detectors (see ``hatch_build.py``), and the guard against stale builds.

The build compiles the detector modules with mypyc and records the SHA-256 of each
source it compiled in ``_compiled.json``. An extension module is picked by Python's
import system before the ``.py`` beside it, so a source edited after the build would
otherwise be ignored: :func:`use_sources_if_stale` (run when :mod:`bastion.privacy` is
imported) then loads *every* compiled module of the package from its source instead —
all of them, because compiled modules may reach into each other's compiled classes and
must not meet a neighbour that is suddenly plain Python.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = "bastion.privacy"
MANIFEST = "_compiled.json"
_HERE = Path(__file__).resolve().parent


def extension_modules() -> list[str]:
    """The modules of the package that have a compiled file (mypyc's ``*__mypyc``
    support libraries aside)."""
    found = set()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in _HERE.glob(f"*{suffix}"):
            name = path.name[: -len(suffix)]
            if name.isidentifier() and not name.endswith("__mypyc"):
                found.add(name)
    return sorted(found)


def _record() -> dict[str, str] | None:
    try:
        record = json.loads((_HERE / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    return {str(k): str(v) for k, v in record.items()}


def stale_modules() -> list[str]:
    """Compiled modules whose source differs from the one compiled, or that the
    build's record does not name (all of them when the record is missing)."""
    record = _record() or {}
    return [
        m
        for m in extension_modules()
        if record.get(m) != hashlib.sha256((_HERE / f"{m}.py").read_bytes()).hexdigest()
    ]


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the named modules of the package as their ``.py`` files."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.names = {f"{PACKAGE}.{m}": _HERE / f"{m}.py" for m in modules}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.names.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def use_sources(modules: Sequence[str] | None = None) -> None:
    """From now on import these modules (default: every compiled one) from their
    ``.py`` files. Must run before any of them is imported."""
    wanted = extension_modules() if modules is None else list(modules)
    loaded = [m for m in wanted if f"{PACKAGE}.{m}" in sys.modules]
    if loaded:
        raise RuntimeError(f"already imported, cannot switch to source: {loaded}")
    sys.meta_path.insert(0, _Sources(wanted))


def use_sources_if_stale() -> list[str]:
    """Import every compiled module from source if any of them is stale; returns the
    stale ones."""
    stale = stale_modules()
    if stale:
        use_sources()
    return stale


def compiled() -> dict[str, bool]:
    """For each module the build compiled (or that has a compiled file), whether the
    running one is compiled."""
    modules = sorted(set(_record() or {}) | set(extension_modules()))
    return {
        m: not str(getattr(importlib.import_module(f"{PACKAGE}.{m}"), "__file__", "")).endswith(
            ".py"
        )
        for m in modules
    }
