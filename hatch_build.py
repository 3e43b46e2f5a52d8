"""Build hook: compile the privacy detectors with mypyc.

The recognizers run on every prompt and every answer the gateway forwards, and their
cost is Python's own overhead spread thin over many small steps (a profile has no hot
spot to remove). mypyc compiles the same typed source to C extension modules, which
run the detectors about 1.4 times faster; nothing else changes — the ``.py`` files stay
the source of truth, and the tests compare the compiled modules with them.

The extension modules are written next to their sources (``build_ext --inplace``), so
the editable install that ``uv sync`` makes uses them, and a wheel carries them.
``src/bastion/privacy/_compiled.json`` records the SHA-256 of each compiled source:
``bastion.privacy`` loads the plain sources instead of extension modules that no longer
match them (an edit since the last build), so a stale build never runs.

Set ``BASTION_PURE_PYTHON=1`` to skip compiling. If compiling fails (no C compiler),
the build says so and goes on: the package then runs as plain Python, only slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = Path("src/bastion/privacy")
#: The modules compiled: the detectors. They import nothing of each other (only
#: ``entities``), so each is compiled on its own (mypyc's ``separate`` mode) and the
#: extension files all stay inside the package. (Compiling ``engine`` and ``entities``
#: too saved 1.6 % more and made the analyzer's objects unpatchable in tests.)
MODULES = ("names", "phones", "addresses", "recognizers")
MANIFEST = "_compiled.json"

_COMPILE = """
import sys
from mypyc.build import mypycify
from setuptools import setup

config, temp, *files = sys.argv[1:]
setup(
    name="bastion-privacy-native",
    ext_modules=mypycify(
        ["--config-file", config, "--cache-dir", temp + "/mypy", "--ignore-missing-imports"]
        + files,
        separate=True,
        target_dir=temp + "/c",
    ),
    script_args=[
        "build_ext", "--inplace", "--build-temp", temp + "/o", "--build-lib", temp + "/l", "-j", "2"
    ],
)
"""


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]  # hatchling: build env only
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        package = root / PACKAGE
        _clean(package)
        if os.environ.get("BASTION_PURE_PYTHON", "") not in ("", "0"):
            print("bastion: BASTION_PURE_PYTHON is set: privacy detectors stay plain Python")
            return
        if not _compile(root):
            return
        (package / MANIFEST).write_text(
            json.dumps({m: _digest(package / f"{m}.py") for m in MODULES}, indent=1) + "\n"
        )
        # The extension files are ignored by git, which hatchling's file selection
        # follows: name them explicitly (an editable install uses them in place).
        build_data["artifacts"].extend(
            [f"/{PACKAGE.as_posix()}/*.so", f"/{PACKAGE.as_posix()}/{MANIFEST}"]
        )
        build_data["pure_python"] = False
        build_data["infer_tag"] = True


def _compile(root: Path) -> bool:
    files = [f"bastion/privacy/{m}.py" for m in MODULES]
    with tempfile.TemporaryDirectory() as temp:
        # mypy's own settings for this project (strict, the pydantic plugin) are for
        # checking; compiling needs none of them, and the plugin is not installed here.
        config = Path(temp) / "mypy.ini"
        config.write_text("[mypy]\n")
        print(f"bastion: compiling {', '.join(MODULES)} with mypyc (a minute or two) …")
        done = subprocess.run(  # noqa: S603 - our own interpreter, our own script
            [sys.executable, "-c", _COMPILE, str(config), temp, *files],
            cwd=root / "src",
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        print(
            "bastion: WARNING: compiling the privacy detectors failed; they run as plain "
            f"Python (slower). mypyc said:\n{tail}",
            file=sys.stderr,
        )
        _clean(root / PACKAGE)
        return False
    return True


def _clean(package: Path) -> None:
    """Remove every extension file of an earlier build (another Python may have named
    them differently, another list of modules left others) and the build's record."""
    for path in package.glob("*.so"):
        path.unlink()
    (package / MANIFEST).unlink(missing_ok=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
