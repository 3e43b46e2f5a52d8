"""Framework mappings: which ledger evidence backs which control. Data, not code.

Each framework is a YAML file under ``frameworks/`` (reviewed and versioned with the
code; ``mapping_version`` says which revision a report used, and the report carries
the file's digest). A control lists evidence *selectors*: ledger events by action
(glob), outcome, flag (glob) and a fragment of their canonical details, with the least
count that backs the control. A control without selectors can only be attested by a
person; a control whose selectors found nothing is a gap, reported with
``closes_gap`` — never filled with text.

Files are validated at load with the policy loader's machinery, so a mistake is named
with its file, line and key (``bastion report frameworks --check FILE``).
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.errors import NotFound
from bastion.policy.loader import PolicyError, parse_document

Ident = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Text = Annotated[str, Field(min_length=1, max_length=2000)]


class FrameworkError(PolicyError):
    code = "invalid_framework"
    what = "the framework mapping"


class UnknownFramework(NotFound):
    code = "unknown_framework"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(_Strict):
    """Ledger events that count as evidence: every given condition must hold."""

    name: Text
    actions: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1)
    outcomes: list[str] | None = None
    #: an event matches when any of its flags matches any of these globs
    flags: list[str] | None = None
    #: a fragment of the event's canonical details JSON, e.g. '"error_code":"budget_exceeded"'
    details_contains: str | None = None
    min_count: int = Field(1, ge=1)
    #: list who did it (approvers, erasers) in the report
    list_actors: bool = False

    def matches(self, action: str, outcome: str, flags: tuple[str, ...], details: str) -> bool:
        if not any(fnmatch.fnmatchcase(action, a) for a in self.actions):
            return False
        if self.outcomes is not None and outcome not in self.outcomes:
            return False
        if self.flags is not None and not any(
            fnmatch.fnmatchcase(f, g) for f in flags for g in self.flags
        ):
            return False
        return self.details_contains is None or self.details_contains in details

    def query(self) -> dict[str, object]:
        out: dict[str, object] = {"actions": self.actions}
        for key in ("outcomes", "flags", "details_contains"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


class Control(_Strict):
    id: Ident
    title: Text
    requirement: Text
    evidence: list[Selector] = Field(default_factory=list)
    closes_gap: Text

    @model_validator(mode="after")
    def _unique_names(self) -> Control:
        names = [s.name for s in self.evidence]
        if len(names) != len(set(names)):
            raise ValueError(f"control {self.id}: evidence names must be unique")
        return self


class Framework(_Strict):
    version: Literal[1]
    framework: Ident
    title: Text
    mapping_version: Annotated[str, Field(min_length=1, max_length=50)]
    source: Text
    controls: list[Control] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_controls(self) -> Framework:
        seen: set[str] = set()
        for control in self.controls:
            if control.id in seen:
                raise ValueError(f"duplicate control id {control.id!r}")
            seen.add(control.id)
        return self

    def control(self, control_id: str) -> Control | None:
        return next((c for c in self.controls if c.id == control_id), None)


@dataclass(frozen=True)
class LoadedFramework:
    framework: Framework
    digest: str
    source: str


def parse_framework(text: str, source: str = "<framework>") -> LoadedFramework:
    framework, _root = parse_document(text, source, Framework, error=FrameworkError)
    return LoadedFramework(framework, hashlib.sha256(text.encode()).hexdigest(), source)


def load_framework_file(path: Path) -> LoadedFramework:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnknownFramework(f"cannot read {path}: {exc}") from None
    return parse_framework(text, str(path))


@cache
def builtin_frameworks() -> dict[str, LoadedFramework]:
    """The frameworks shipped in the package, by id (validated once per process)."""
    found: dict[str, LoadedFramework] = {}
    folder = resources.files("bastion.evidence") / "frameworks"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            loaded = parse_framework(entry.read_text(encoding="utf-8"), f"frameworks/{entry.name}")
            found[loaded.framework.framework] = loaded
    return found


def get_framework(name: str) -> LoadedFramework:
    frameworks = builtin_frameworks()
    if name not in frameworks:
        raise UnknownFramework(
            f"unknown framework {name!r}; known: {', '.join(sorted(frameworks))}"
        )
    return frameworks[name]
