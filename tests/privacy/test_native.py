"""The compiled detectors (mypyc, see hatch_build.py) against their own sources.

The build compiles ``names``, ``phones``, ``addresses`` and ``recognizers``; the
compiled modules must find exactly what the sources find, and a source edited after
the build must be what runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from faker import Faker

from bastion.privacy import Analyzer, _native

SRC = Path(_native.__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.environ.get("BASTION_PURE_PYTHON", "") not in ("", "0"),
    reason="BASTION_PURE_PYTHON is set: the build compiled nothing",
)


def corpus() -> list[str]:
    """Sentences with personal data of many kinds and locales, from Faker (seeded)."""
    texts = []
    for locale in ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL"):
        fake = Faker(locale)
        fake.seed_instance(7)
        for _ in range(25):
            texts.append(
                f"Dear {fake.name()}, your card {fake.credit_card_number()} and IBAN "
                f"{fake.iban()} are on file. Call {fake.phone_number()} or write to "
                f"{fake.email()} at {fake.address()}. Server {fake.ipv4()} / {fake.ipv6()}; "
                f"SSN {fake.ssn()}. {fake.sentence()} Met {fake.first_name()} in "
                f"{fake.city()}, {fake.country()}."
            )
    return texts


def spans_of(analyzer: Analyzer, texts: list[str]) -> list[list[list[object]]]:
    return [
        [[s.entity_type, s.start, s.end, s.score, s.text] for s in analyzer.analyze(t)]
        for t in texts
    ]


_FROM_SOURCES = """
import json, sys
from bastion.privacy import _native
_native.use_sources()
from bastion.privacy import KNOWN_ENTITIES, Analyzer
assert not any(_native.compiled().values())
texts = json.load(sys.stdin)
a = Analyzer(KNOWN_ENTITIES)
print(json.dumps([[[s.entity_type, s.start, s.end, s.score, s.text] for s in a.analyze(t)]
                  for t in texts]))
"""


def test_the_detectors_run_compiled() -> None:
    assert _native.stale_modules() == []
    running = _native.compiled()
    assert {"names", "phones", "addresses", "recognizers"} <= set(running)
    assert all(running.values()), running


def test_compiled_detectors_find_what_their_sources_find(analyzer: Analyzer) -> None:
    texts = corpus()
    compiled = spans_of(analyzer, texts)
    done = subprocess.run(
        [sys.executable, "-c", _FROM_SOURCES],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    from_sources = json.loads(done.stdout)
    assert sum(len(s) for s in compiled) > 10 * len(texts)  # it found plenty
    for text, got, expected in zip(texts, compiled, from_sources, strict=True):
        assert got == expected, text


def copy_of_the_package(tmp_path: Path) -> Path:
    """The built package (compiled files and record included), copied to edit."""
    copy = tmp_path / "src"
    shutil.copytree(SRC / "bastion", copy / "bastion", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def run_from(copy: Path, script: str) -> list[str]:
    """What ``script`` prints, run with ``copy`` first on the path, split on spaces."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.split(" ", 3)


def test_a_source_edited_after_the_build_is_what_runs(tmp_path: Path) -> None:
    copy = copy_of_the_package(tmp_path)
    names = copy / "bastion" / "privacy" / "names.py"
    names.write_text(names.read_text(encoding="utf-8") + "\nEDITED = True\n", encoding="utf-8")
    names_file, edited, phones_file, stale = run_from(
        copy,
        "from bastion.privacy import _native\n_native.install_guard()\n"
        "from bastion.privacy import names, phones\n"
        "print(names.__file__, getattr(names, 'EDITED', False), phones.__file__,"
        " _native.stale_modules())",
    )
    assert names_file == str(names)
    assert edited == "True"
    # All of them from source: compiled modules do not call into stale neighbours.
    assert phones_file.endswith("phones.py")
    assert stale.strip() == "['names']"


def test_a_compiled_module_the_build_did_not_record_is_not_used(tmp_path: Path) -> None:
    copy = copy_of_the_package(tmp_path)
    record = copy / "bastion" / "privacy" / "_compiled.json"
    digests = json.loads(record.read_text(encoding="utf-8"))
    del digests["phones"]  # as if left over from a build that compiled other modules
    record.write_text(json.dumps(digests), encoding="utf-8")
    printed = run_from(
        copy,
        "from bastion.privacy import _native\n_native.install_guard()\n"
        "from bastion.privacy import names, phones\nprint(names.__file__, phones.__file__)",
    )
    assert [Path(f.strip()).suffix for f in printed] == [".py", ".py"]


def test_importing_the_package_reads_no_build_record(tmp_path: Path) -> None:
    """The check waits for the first detector import: the policy schema imports
    ``bastion.privacy.config`` alone and pays nothing for it."""
    copy = copy_of_the_package(tmp_path)
    (copy / "bastion" / "privacy" / "_compiled.json").write_text("not json", encoding="utf-8")
    printed = run_from(
        copy,
        "import sys\nfrom bastion.privacy import _native\n_native.install_guard()\n"
        "import bastion.privacy.config\n"
        "print(_native._guard.decided, 'bastion.privacy.names' in sys.modules)",
    )
    assert [p.strip() for p in printed] == ["False", "False"]


def test_importing_the_package_installs_nothing_the_programs_do(tmp_path: Path) -> None:
    """``import bastion.privacy`` leaves ``sys.meta_path`` alone; the server's app module
    and the CLI's ``main`` put the guard first before a detector can load."""
    copy = copy_of_the_package(tmp_path)
    printed = run_from(
        copy,
        "import sys\nbefore = list(sys.meta_path)\nimport bastion.privacy\n"
        "from bastion.privacy import _native\nalone = _native._guard in sys.meta_path\n"
        "from bastion.app import create_app\nimport bastion.cli.main\n"
        "print(alone, sys.meta_path == before, _native._guard in sys.meta_path,"
        " 'bastion.privacy.names' in sys.modules)",
    )
    # importing the app module installs nothing either: create_app() does, first
    assert [p.strip() for p in printed] == ["False", "True", "False", "False"]


def test_the_server_app_runs_a_detector_edited_since_the_build(tmp_path: Path) -> None:
    copy = copy_of_the_package(tmp_path)
    names = copy / "bastion" / "privacy" / "names.py"
    names.write_text(names.read_text(encoding="utf-8") + "\nEDITED = True\n", encoding="utf-8")
    home = tmp_path / "home"
    printed = run_from(
        copy,
        "from bastion.app import create_app\nfrom bastion.settings import Settings\n"
        "from bastion.db import create_database, upgrade\n"
        f"settings = Settings(home={str(home)!r})\nsettings.home.mkdir()\n"
        "db = create_database(settings.resolved_database_url)\nupgrade(db.engine)\n"
        "db.dispose()\napp = create_app(settings)\n"
        "from bastion.privacy import names\napp.state.runtime.close()\n"
        "print(names.__file__, getattr(names, 'EDITED', False))",
    )
    assert [p.strip() for p in printed] == [str(names), "True"]
