"""Every command, on wrong input, answers ``error: MESSAGE [CODE]`` and a non-zero exit.

The commands are enumerated from the Typer app itself, so a new command is covered the
day it is added: an unknown option, a word where a number goes, a value outside a
choice, a missing input file and a malformed one (junk bytes with the suffix the help
names). None may print a traceback.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer.main
from typer.testing import CliRunner

from bastion.cli.commands import COMMANDS as LAZY
from bastion.cli.commands import load
from bastion.cli.main import _register, app

_register()
ROOT = typer.main.get_command(app)
CODED = re.compile(r"error: .+\[[a-z][a-z0-9_]*\]", re.DOTALL)
# options that name a file the command writes, not one it reads
OUTPUTS = {"report", "save_reference", "output", "out", "html", "json_out"}
JUNK = b"\x00\xff\xfe{not: [valid, \x00 in any format\n\x89PNG,,\n"


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subs = getattr(command, "commands", None)
    if command is ROOT:  # the root loads its commands lazily: every one in the table
        subs = {**ROOT.commands, **{name: load(name) for name in LAZY}}
    if subs:
        for name, sub in sorted(subs.items()):
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = list(_commands(ROOT))


def _annotation(param: Any) -> Any:
    kind = param.type_descriptor.annotation
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is list:
        kind = typing.get_args(kind)[0]
    return kind


def _is_input_path(param: Any) -> bool:
    return _annotation(param) is Path and param.name not in OUTPUTS


def _placeholder(param: Any, tmp: Path) -> str:
    kind = _annotation(param)
    if kind is Path:
        return str(tmp / "missing-input.csv")
    if kind is int:
        return "1"
    if kind is float:
        return "0.5"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return str(next(iter(kind)).value)
    return "x"


def _with(param: Any, value: str) -> list[str]:
    return [value] if param.param_type_name == "argument" else [param.opts[0], value]


def _required(command: Any, tmp: Path, override: dict[str, str] | None = None) -> list[str]:
    override = override or {}
    args: list[str] = []
    for p in command.params:
        if p.required or p.name in override:
            args += _with(p, override.get(p.name, _placeholder(p, tmp)))
    return args


def _suffix(param: Any) -> str:
    found = re.search(r"\.(parquet|csv|json|ya?ml|npy|joblib|txt|pem)\b", param.help or "")
    return found.group(0) if found else ".bin"


def wrong_inputs(command: Any, tmp: Path) -> list[tuple[str, list[str]]]:
    cases = [("unknown option", [*_required(command, tmp), "--no-such-option"])]
    for p in command.params:
        kind = _annotation(p)
        if getattr(p, "is_flag", False) or kind is bool:
            continue
        if kind in (int, float):
            cases.append((f"{p.name}=abc", _required(command, tmp, {p.name: "abc"})))
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            cases.append((f"{p.name}=nonsense", _required(command, tmp, {p.name: "nonsense"})))
        elif _is_input_path(p):
            missing = str(tmp / f"no-such-file{_suffix(p)}")
            cases.append((f"{p.name} missing", _required(command, tmp, {p.name: missing})))
            junk = tmp / f"junk-{p.name}{_suffix(p)}"
            junk.write_bytes(JUNK)
            inputs = {q.name: str(junk) for q in command.params if q.required and _is_input_path(q)}
            cases.append(
                (f"{p.name} malformed", _required(command, tmp, inputs | {p.name: str(junk)}))
            )
            if p.type_descriptor.parameter_info.file_okay:  # a directory where a file belongs
                cases.append((f"{p.name} a directory", _required(command, tmp, {p.name: str(tmp)})))
    return cases


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    env = {"BASTION_HOME": str(home), "BASTION_DATABASE_URL": f"sqlite:///{home / 'b.db'}"}
    assert CliRunner().invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    return env


def test_the_enumeration_sees_every_group() -> None:
    names = {path[0] for path, _ in COMMANDS}
    assert {"drift", "fairness", "performance", "pii", "keys", "audit", "models"} <= names
    assert ("drift", "embeddings") in {p for p, _ in COMMANDS}


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_answers_wrong_input_with_a_coded_error(
    path: tuple[str, ...], command: Any, env: dict[str, str], tmp_path: Path
) -> None:
    cases = wrong_inputs(command, tmp_path)
    for label, args in cases:
        result = CliRunner().invoke(app, [*path, *args], env=env)
        said = result.output
        where = f"bastion {' '.join([*path, *args])} ({label})"
        assert result.exit_code != 0, f"{where} exited 0:\n{said}"
        assert "Traceback" not in said, f"{where} printed a traceback:\n{said}"
        assert result.exception is None or isinstance(result.exception, SystemExit), where
        assert CODED.search(said), f"{where} gave no coded error:\n{said}"


# --- wrong columns and values in good files (the monitoring commands) ------------------
@pytest.fixture
def good(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=200), "y": rng.integers(0, 2, 200), "p": rng.integers(0, 2, 200),
         "g": rng.choice(["a", "b"], 200)}
    )  # fmt: skip
    frame.to_csv(tmp_path / "good.csv", index=False)
    np.save(tmp_path / "v.npy", rng.normal(size=(50, 4)))
    np.save(tmp_path / "v3.npy", rng.normal(size=(50, 3)))
    np.save(tmp_path / "flat.npy", rng.normal(size=50))
    (tmp_path / "empty.csv").write_text("x,y\n", encoding="utf-8")
    return {p.name: p for p in tmp_path.iterdir()}


BAD_VALUES = [
    (["drift", "check", "-r", "{good.csv}", "-c", "{good.csv}", "--columns", "nope"],
     "monitoring_column_not_found"),
    (["drift", "check", "-r", "{good.csv}", "-c", "{empty.csv}"], "monitoring_"),
    (["drift", "check", "-r", "{good.csv}", "-c", "{good.csv}", "--drift-share", "7"],
     "invalid_option"),
    (["drift", "check", "-r", "{good.csv}", "-c", "{good.csv}", "--keep", "nope"],
     "monitoring_column_not_found"),
    (["drift", "check", "-r", "{good.csv}", "-c", "{good.csv}", "--fail-on", "rows"], "usage_error"),
    (["fairness", "check", "-d", "{good.csv}", "--target", "y", "--prediction", "p",
      "--sensitive", "nope"], "monitoring_column_not_found"),
    (["fairness", "check", "-d", "{good.csv}", "--target", "g", "--prediction", "p",
      "--sensitive", "g"], "monitoring_ambiguous_label"),
    (["fairness", "check", "-d", "{good.csv}", "--target", "y", "--prediction", "p",
      "--sensitive", "g", "--four-fifths", "3"], "invalid_option"),
    (["performance", "check", "-c", "{good.csv}", "--target", "nope", "--prediction", "p"],
     "monitoring_column_not_found"),
    (["performance", "check", "-c", "{good.csv}", "--target", "y", "--prediction", "p",
      "--tolerance", "-1"], "usage_error"),
    (["drift", "embeddings", "-r", "{v.npy}", "-c", "{v3.npy}"], "monitoring_invalid_data"),
    (["drift", "embeddings", "-r", "{v.npy}", "-c", "{flat.npy}"], "monitoring_invalid_data"),
    (["drift", "embeddings", "-r", "{good.csv}", "-c", "{good.csv}", "--column", "g"],
     "monitoring_invalid_data"),
    (["pii", "scan", "{good.csv}", "--entity", "NOPE"], "unknown_entity"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code"), BAD_VALUES, ids=[" ".join(a[:2]) for a, _ in BAD_VALUES])
def test_wrong_columns_and_values_name_their_code(args, code, good) -> None:
    argv = [str(good[a[1:-1]]) if a.startswith("{") else a for a in args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"[{code}" in result.output, result.output


def test_a_custom_root_group_keeps_coded_errors() -> None:
    from typer.core import TyperGroup

    from bastion.cli.coded import CodedErrors, use_coded_errors

    class Lazy(TyperGroup):
        pass

    custom = typer.Typer(cls=Lazy)

    @custom.command()
    def one(n: int = 1) -> None:
        typer.echo(n)

    @custom.command()
    def two() -> None:
        raise RuntimeError("boom")

    use_coded_errors(custom)
    assert issubclass(custom.info.cls, CodedErrors) and issubclass(custom.info.cls, Lazy)
    bad = CliRunner().invoke(custom, ["one", "--n", "x"])
    assert bad.exit_code == 2 and "[usage_error]" in bad.output
    boom = CliRunner().invoke(custom, ["two"])
    assert boom.exit_code == 1 and "[internal_error]" in boom.output and "boom" in boom.output
