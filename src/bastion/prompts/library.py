"""Load, check, pin and render the versioned prompts.

A prompt is identified by ``name@version``; its **digest** is the SHA-256 of the
validated spec as canonical JSON, so re-indenting a file or editing a comment is not a
change, while any change to a template, a variable or a hint is.

**Pinning.** Every ``name@version`` seen is recorded with its digest in a lock file
(JSON, one entry a version). Loading a file whose ``name@version`` is in the lock with
another digest is refused (``prompt_changed_without_version``): a prompt that was used
(and recorded in the ledger under that version) can never silently mean something else;
change it by adding ``version: N+1``. The prompts Bastion ships are pinned in
``builtin/prompts.lock`` (in the package, checked by a test and at start); prompts an
operator adds under ``<home>/prompts/`` are pinned in ``<home>/prompts.lock``, written
the first time a version is seen.

Templates are Jinja2 in a sandbox with ``StrictUndefined``: a template cannot reach
Python internals, and a missing variable is an error, never an empty string.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox
import yaml

from bastion.policy.loader import PolicyIssue, issue_at, parse_document
from bastion.prompts.errors import (
    PromptChanged,
    PromptFileError,
    PromptNotFound,
    PromptVariablesError,
)
from bastion.prompts.schema import PromptSpec

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_LOCK = BUILTIN_DIR / "prompts.lock"

_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


def sources_for(home: Path) -> list[tuple[Path, Path]]:
    """The shipped prompts, then the operator's under ``<home>/prompts/``."""
    return [(BUILTIN_DIR, BUILTIN_LOCK), (home / "prompts", home / "prompts.lock")]


def spec_digest(spec: PromptSpec) -> str:
    canonical = json.dumps(
        spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Prompt:
    spec: PromptSpec
    digest: str
    source: str
    templates: tuple[jinja2.Template, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def ref(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"

    def evidence(self) -> dict[str, Any]:
        """What a ledger event records of the prompt it used."""
        return {"name": self.name, "version": self.version, "digest": self.digest}


@dataclass(frozen=True)
class Rendered:
    prompt: Prompt
    messages: list[dict[str, str]]

    def evidence(self) -> dict[str, Any]:
        return self.prompt.evidence()


def parse_prompt(text: str, source: str) -> Prompt:
    """One prompt file, validated; every problem with its line (``invalid_prompt``)."""
    spec, root = parse_document(text, source, PromptSpec, error=PromptFileError)
    issues: list[PolicyIssue] = []
    templates: list[jinja2.Template] = []
    used: set[str] = set()
    first_use: dict[str, int] = {}
    for i, message in enumerate(spec.messages):
        loc: tuple[str | int, ...] = ("messages", i, "content")
        try:
            ast = _ENV.parse(message.content)
        except jinja2.TemplateSyntaxError as exc:
            issues.append(_template_issue(root, loc, source, exc))
            continue
        names = jinja2.meta.find_undeclared_variables(ast)
        for name in names:
            first_use.setdefault(name, i)
        used |= names
        templates.append(_ENV.from_string(message.content))
    if not issues:
        for name in sorted(used - set(spec.variables)):
            issues.append(
                issue_at(
                    root,
                    ("messages", first_use[name], "content"),
                    source,
                    f"the template uses {name!r}, which is not declared under variables",
                )
            )
        for name in sorted(set(spec.variables) - used):
            issues.append(
                issue_at(root, ("variables", name), source, "declared but no template uses it")
            )
    if issues:
        raise PromptFileError(issues)
    return Prompt(spec, spec_digest(spec), source, tuple(templates))


def _template_issue(
    root: yaml.Node, loc: tuple[str | int, ...], source: str, exc: jinja2.TemplateSyntaxError
) -> PolicyIssue:
    placed = issue_at(root, loc, source, "")
    line = placed.line
    if line is not None:
        node = root
        for part in loc:  # find the scalar to know whether its text starts on the next line
            if isinstance(node, yaml.MappingNode):
                node = next(v for k, v in node.value if str(k.value) == str(part))
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part]
        block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
        line += (exc.lineno or 1) - (0 if block else 1)
    return PolicyIssue(
        source,
        line,
        None if line != placed.line else placed.column,
        placed.key,
        f"template error: {exc.message}",
    )


def render(prompt: Prompt, variables: Mapping[str, Any]) -> Rendered:
    """The prompt's messages for ``variables``; refuses missing, unknown or oversized ones."""
    spec = prompt.spec
    unknown = sorted(set(variables) - set(spec.variables))
    if unknown:
        raise PromptVariablesError(
            f"{prompt.ref} does not declare {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(spec.variables)) or 'no variables'}",
            param=unknown[0],
        )
    values: dict[str, Any] = {}
    for name, declared in spec.variables.items():
        if name not in variables or variables[name] is None:
            if declared.required:
                raise PromptVariablesError(f"{prompt.ref} needs the variable {name!r}", param=name)
            values[name] = [] if declared.kind == "list" else ""
            continue
        value = variables[name]
        if declared.kind == "list" and not isinstance(value, list | tuple):
            raise PromptVariablesError(f"{name!r} must be a list", param=name)
        if declared.kind == "number" and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise PromptVariablesError(f"{name!r} must be a number", param=name)
        if declared.kind == "text" and not isinstance(value, str):
            raise PromptVariablesError(f"{name!r} must be text", param=name)
        too_many = declared.max_items is not None and isinstance(value, list | tuple)
        if too_many and len(value) > (declared.max_items or 0):
            raise PromptVariablesError(
                f"{name!r} has {len(value)} items; at most {declared.max_items}", param=name
            )
        if declared.max_chars is not None:
            size = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
            if size > declared.max_chars:
                raise PromptVariablesError(
                    f"{name!r} is {size} characters; at most {declared.max_chars}", param=name
                )
        values[name] = value
    messages = []
    for message, template in zip(spec.messages, prompt.templates, strict=True):
        try:
            text = template.render(values)
        except jinja2.TemplateError as exc:  # a sandbox refusal, an attribute that is not there
            raise PromptVariablesError(f"{prompt.ref} could not be rendered: {exc}") from None
        messages.append({"role": message.role, "content": text.strip()})
    return Rendered(prompt, messages)


# --- the lock ------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise PromptFileError(
            [PolicyIssue(str(path), None, None, "", f"the prompt lock cannot be read: {exc}")]
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.get("prompts", {}).items()
    ):
        raise PromptFileError(
            [PolicyIssue(str(path), None, None, "prompts", "expected name@version: digest")]
        )
    return dict(data.get("prompts", {}))


def write_lock(path: Path, entries: Mapping[str, str]) -> None:
    text = json.dumps({"prompts": dict(sorted(entries.items()))}, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".prompts.lock.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


# --- the library ---------------------------------------------------------------------


class PromptLibrary:
    """Every prompt of the given directories, checked against their locks.

    Built once at start (``create_app``) and by the CLI; lookups are by name (the
    latest version) or ``name@version``.
    """

    def __init__(self, prompts: Iterable[Prompt]) -> None:
        self._by_ref: dict[str, Prompt] = {}
        for prompt in prompts:
            self._by_ref[prompt.ref] = prompt

    @classmethod
    def load(
        cls,
        sources: Iterable[tuple[Path, Path]] = ((BUILTIN_DIR, BUILTIN_LOCK),),
        *,
        record: bool = True,
    ) -> PromptLibrary:
        """Load ``(directory, lock)`` pairs; new versions are added to their lock when
        ``record`` (the shipped lock is never written: a shipped prompt must be pinned)."""
        prompts: list[Prompt] = []
        issues: list[PolicyIssue] = []
        changed: list[str] = []
        seen: dict[str, str] = {}
        for directory, lock_path in sources:
            if not directory.is_dir():
                continue
            lock = read_lock(lock_path)
            additions: dict[str, str] = {}
            for path in sorted(directory.glob("*.yaml")):
                try:
                    text = path.read_text(encoding="utf-8")
                    prompt = parse_prompt(text, str(path))
                except (OSError, UnicodeDecodeError) as exc:
                    issues.append(PolicyIssue(str(path), None, None, "", f"cannot read: {exc}"))
                    continue
                except PromptFileError as exc:
                    issues.extend(exc.issues)
                    continue
                if prompt.ref in seen:
                    issues.append(
                        PolicyIssue(
                            str(path),
                            1,
                            1,
                            "version",
                            f"{prompt.ref} is also defined in {seen[prompt.ref]}",
                        )
                    )
                    continue
                seen[prompt.ref] = str(path)
                pinned = lock.get(prompt.ref)
                if pinned is None:
                    additions[prompt.ref] = prompt.digest
                elif pinned != prompt.digest:
                    changed.append(f"{path} ({prompt.ref})")
                    continue
                prompts.append(prompt)
            if additions and record and lock_path != BUILTIN_LOCK and not issues:
                write_lock(lock_path, {**lock, **additions})
            elif additions and lock_path == BUILTIN_LOCK:
                issues.extend(
                    PolicyIssue(seen[ref], None, None, "version", "not pinned in prompts.lock")
                    for ref in sorted(additions)
                )
        if issues:
            raise PromptFileError(issues)
        if changed:
            raise PromptChanged(
                "a prompt changed without a new version: "
                + "; ".join(changed)
                + ". Give it `version:` one higher (the old version stays recorded), "
                "or restore the text that was pinned"
            )
        return cls(prompts)

    def all(self) -> list[Prompt]:
        return sorted(self._by_ref.values(), key=lambda p: (p.name, p.version))

    def get(self, ref: str) -> Prompt:
        """``name`` (its latest version) or ``name@version``."""
        name, _, version = ref.partition("@")
        if version:
            prompt = self._by_ref.get(ref)
            if prompt is None:
                raise PromptNotFound(f"no prompt {ref}; `bastion prompts list` shows them")
            return prompt
        versions = [p for p in self._by_ref.values() if p.name == name]
        if not versions:
            raise PromptNotFound(f"no prompt named {name!r}; `bastion prompts list` shows them")
        return max(versions, key=lambda p: p.version)

    def render(self, ref: str, variables: Mapping[str, Any]) -> Rendered:
        return render(self.get(ref), variables)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line templates as ``|`` blocks, so a diff shows the lines that changed."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def as_yaml(prompt: Prompt) -> str:
    text: str = yaml.dump(
        prompt.spec.model_dump(mode="json"),
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return text


def diff(old: Prompt, new: Prompt) -> str:
    """A unified diff of two prompts as YAML (what changed between two versions)."""

    def lines(p: Prompt) -> list[str]:
        return as_yaml(p).splitlines(keepends=True)

    return "".join(difflib.unified_diff(lines(old), lines(new), old.ref, new.ref))
