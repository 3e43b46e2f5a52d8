"""The compiled detectors (see ``hatch_build.py``), and the guard against stale builds.

The build compiles the detector modules with mypyc and records the SHA-256 of each
source it compiled in ``_compiled.json``. An extension module is picked by Python's
import system before the ``.py`` beside it, so a source edited after the build would
otherwise be ignored. A finder that the programs starting Bastion (``bastion.app``, the
CLI's ``main``, the tests' conftest, the benchmarks) put first on the import path checks
the record at the first import of a compiled module and, if any source differs (or a
compiled file is unrecorded), loads *every* compiled module of the package from its
source instead — all of them, because compiled modules may reach into each other's
compiled classes and must not meet a neighbour that is suddenly plain Python.
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


class _Guard(importlib.abc.MetaPathFinder):
    """Decides, at the first import of a compiled module of the package, whether the
    build is current; if not, finds every compiled module as its ``.py`` file instead.
    Importing the package itself reads nothing."""

    def __init__(self) -> None:
        self.decided = False
        self.stale: list[str] = []
        self._sources: dict[str, Path] = {}
        self._forced = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, module = fullname.rpartition(".")
        if package != PACKAGE:
            return None
        if not self.decided:
            if not _has_extension(module):
                return None  # not compiled: nothing to decide yet
            self.decide()
        source = self._sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)

    def decide(self) -> None:
        self.decided = True
        self.stale = stale_modules()
        if self.stale or self._forced:
            self._sources = {f"{PACKAGE}.{m}": _HERE / f"{m}.py" for m in extension_modules()}

    def force_sources(self) -> None:
        loaded = [m for m in extension_modules() if f"{PACKAGE}.{m}" in sys.modules]
        if loaded:
            raise RuntimeError(f"already imported, cannot switch to source: {loaded}")
        self._forced = True
        self.decide()


def _has_extension(module: str) -> bool:
    return any(
        (_HERE / f"{module}{suffix}").is_file() for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


_guard = _Guard()


def install_guard() -> None:
    """Put the guard first on the import path (once). Entry points call it before they
    import anything that imports a detector; importing :mod:`bastion.privacy` does not."""
    if _guard not in sys.meta_path:
        sys.meta_path.insert(0, _guard)


def use_sources() -> None:
    """From now on import every compiled module from its ``.py`` file (the tests
    compare the two). Must run before any of them is imported."""
    install_guard()
    _guard.force_sources()


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
