"""The compiled detectors (see ``hatch_build.py``), and the guard against stale builds.

The build compiles the detector modules with mypyc and records the SHA-256 of each
source it compiled. An extension module is picked by Python's import system before the
``.py`` beside it, so a source edited after the build would otherwise be ignored:
:func:`use_sources_if_stale` (run when :mod:`bastion.privacy` is imported) loads every
detector from its source instead whenever one of them no longer matches its build.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path

PACKAGE = "bastion.privacy"
#: The modules the build compiles (``hatch_build.MODULES``).
MODULES = ("names", "phones", "addresses", "recognizers")
MANIFEST = "_compiled.json"
_HERE = Path(__file__).resolve().parent


def extension_file(module: str) -> Path | None:
    """The compiled file Python would import for ``module``, if there is one."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _HERE / f"{module}{suffix}"
        if path.is_file():
            return path
    return None


def stale_modules() -> list[str]:
    """Compiled modules whose source differs from the one compiled (all of them when
    the build's record is missing or unreadable)."""
    built = [m for m in MODULES if extension_file(m) is not None]
    if not built:
        return []
    try:
        record = json.loads((_HERE / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return built
    return [
        m
        for m in built
        if not isinstance(record, dict)
        or record.get(m) != hashlib.sha256((_HERE / f"{m}.py").read_bytes()).hexdigest()
    ]


def use_sources_if_stale() -> list[str]:
    """Load every detector from its ``.py`` if any compiled one is stale; returns the
    stale ones. Must run before any detector is imported."""
    stale = stale_modules()
    if stale:
        use_sources()
    return stale


def use_sources() -> None:
    """Load every detector from its ``.py``, compiled or not (the tests compare the
    two). Must run before any detector is imported."""
    for module in MODULES:
        name = f"{PACKAGE}.{module}"
        if name in sys.modules:
            continue
        loader = importlib.machinery.SourceFileLoader(name, str(_HERE / f"{module}.py"))
        spec = importlib.util.spec_from_loader(name, loader)
        assert spec is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        loader.exec_module(loaded)
        package = sys.modules.get(PACKAGE)
        if package is not None:
            setattr(package, module, loaded)


def compiled() -> dict[str, bool]:
    """For each detector module, whether the running one is compiled."""
    result = {}
    for module in MODULES:
        loaded = sys.modules.get(f"{PACKAGE}.{module}")
        if loaded is None:
            loaded = importlib.import_module(f"{PACKAGE}.{module}")
        result[module] = not str(getattr(loaded, "__file__", "")).endswith(".py")
    return result
