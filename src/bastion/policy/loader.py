"""Read a policy file and explain every problem with its file, line, column and key.

PyYAML gives us the node tree with positions; pydantic validates the data; each
pydantic error's location is walked back through the node tree to a line. Problems
pydantic cannot see (a duplicate key, a model naming an unknown provider) are found
here so that they too carry positions.
"""

from __future__ import annotations

import hashlib
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from bastion.errors import InvalidInput
from bastion.policy.schema import BUILTIN_PROVIDERS, Policy
from bastion.toolgate.config import pattern_problems

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class PolicyIssue:
    file: str
    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return f"{where}: {self.key or '(top level)'}: {self.message}"


class PolicyError(InvalidInput):
    code = "invalid_policy"
    #: What the document is, for the message (subclasses for other YAML documents).
    what = "the policy"

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        count = len(issues)
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{self.what} has {count} error{'s' if count != 1 else ''}:\n{lines}")


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    digest: str
    source: str
    #: The file's text as loaded: policy history keeps it so a rollback restores it.
    text: str = ""


M = TypeVar("M", bound=BaseModel)


def load_policy(path: Path) -> LoadedPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            [
                PolicyIssue(
                    str(path), None, None, "", "file not found: create it or set BASTION_POLICY"
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([PolicyIssue(str(path), None, None, "", f"cannot read: {exc}")]) from None
    return parse_policy(text, str(path))


MAX_DEPTH = 32


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with bounded nesting: a policy never needs them,
    and a few hundred bytes of nested aliases would otherwise expand without bound."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a policy file", mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans,
# which turned `action: off` into False and an error that named no cause.
_PolicyLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _parse_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    loader = _PolicyLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def parse_document(
    text: str, source: str, model: type[M], *, error: type[PolicyError] = PolicyError
) -> tuple[M, yaml.Node]:
    """Validate one YAML document against ``model``; every problem located by line.

    The policy file uses it, and so does any other YAML Bastion reads as data (the
    evidence package's framework mappings), with its own ``error`` class."""
    try:
        root, data = _parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise error([PolicyIssue(source, line, column, "", f"not valid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise error([PolicyIssue(source, None, None, "", f"not valid YAML: {exc}")]) from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise error(
            [PolicyIssue(source, 1, 1, "", "expected a mapping that starts with `version: 1`")]
        )
    issues = _duplicate_keys(root, (), source)
    if issues:
        raise error(issues)
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        raise error(
            [
                _issue_from_pydantic(err, root, source, model)
                for err in exc.errors(include_url=False)
            ]
        ) from None
    return value, root


def issue_at(root: yaml.Node, loc: Loc, source: str, message: str) -> PolicyIssue:
    """A problem found after validation, at the node ``loc`` names."""
    return _issue_at(root, loc, source, message)


def parse_policy(text: str, source: str = "<policy>") -> LoadedPolicy:
    policy, root = parse_document(text, source, Policy)
    references = check_references(policy)
    if references:
        raise PolicyError([_issue_at(root, loc, source, message) for loc, message in references])
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedPolicy(policy=policy, digest=digest, source=source, text=text)


def check_references(policy: Policy) -> list[tuple[Loc, str]]:
    """Cross-references the schema alone cannot check."""
    problems: list[tuple[Loc, str]] = []
    providers = set(policy.providers) | BUILTIN_PROVIDERS
    for name, model in policy.models.items():
        if model.provider not in providers:
            known = ", ".join(sorted(providers))
            problems.append(
                (
                    (("models", name, "provider")),
                    f"unknown provider {model.provider!r}; known: {known}",
                )
            )
        for i, fallback in enumerate(model.fallbacks):
            if fallback == name:
                problems.append(
                    (("models", name, "fallbacks", i), "a model cannot fall back to itself")
                )
            elif fallback not in policy.models:
                problems.append(
                    (
                        ("models", name, "fallbacks", i),
                        f"unknown model {fallback!r}: declare it under models",
                    )
                )
    for name, provider in policy.providers.items():
        if provider.kind == "azure" and (provider.base_url is None or provider.api_version is None):
            problems.append((("providers", name), "kind azure needs base_url and api_version"))
    sections: list[tuple[str, dict[str, Any]]] = [
        ("roles", dict(policy.roles)),
        ("teams", dict(policy.teams)),
        ("users", dict(policy.users)),
    ]
    for section, entries in sections:
        for name, entry in entries.items():
            for i, pattern in enumerate(entry.models or []):
                if not any(ch in pattern for ch in "*?[") and pattern not in policy.models:
                    problems.append(
                        (
                            (section, name, "models", i),
                            f"unknown model {pattern!r}: declare it under models, "
                            "or use a pattern like 'gpt-*'",
                        )
                    )
            servers = set(policy.mcp.servers)
            for i, message in pattern_problems(list(entry.tools or []), servers):
                problems.append(((section, name, "tools", i), message))
    embedder = policy.documents.embedding_model
    if embedder is not None:
        declared = policy.models.get(embedder)
        if declared is None or declared.kind != "embedding":
            problems.append(
                (
                    ("documents", "embedding_model"),
                    f"{embedder!r} is not a model of kind embedding: declare it under models "
                    "with kind: embedding",
                )
            )
    return problems


def _duplicate_keys(node: yaml.Node, loc: Loc, source: str) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                issues.append(
                    PolicyIssue(
                        source,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        _dotted((*loc, key)),
                        "duplicate key: the later value would silently replace the earlier one",
                    )
                )
            seen.add(key)
            issues.extend(_duplicate_keys(value_node, (*loc, key), source))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            issues.extend(_duplicate_keys(item, (*loc, i), source))
    return issues


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _find(root: yaml.Node, loc: Loc) -> tuple[yaml.Node, bool, int]:
    """The deepest node along ``loc``; whether it was found whole; how many parts matched."""
    node = root
    for depth, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    node = value_node
                    break
            else:
                return node, False, depth
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            return node, False, depth
    return node, True, len(loc)


def _key_node(root: yaml.Node, loc: Loc) -> yaml.Node | None:
    parent, found, _ = _find(root, loc[:-1])
    if found and isinstance(parent, yaml.MappingNode):
        for key_node, _value in parent.value:
            if str(key_node.value) == str(loc[-1]):
                node: yaml.Node = key_node
                return node
    return None


def _issue_at(root: yaml.Node, loc: Loc, source: str, message: str) -> PolicyIssue:
    node, _found, _depth = _find(root, loc)
    mark = node.start_mark
    return PolicyIssue(source, mark.line + 1, mark.column + 1, _dotted(loc), message)


def _issue_from_pydantic(
    err: Any, root: yaml.Node, source: str, model: type[BaseModel] = Policy
) -> PolicyIssue:
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    if kind == "missing":
        node, _found, _ = _find(root, loc[:-1])
        mark = node.start_mark
        return PolicyIssue(
            source, mark.line + 1, mark.column + 1, _dotted(loc), "required key is missing"
        )
    if kind == "extra_forbidden":
        key_node = _key_node(root, loc)
        mark = key_node.start_mark if key_node is not None else root.start_mark
        allowed = _allowed_keys(loc[:-1], model)
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return PolicyIssue(
            source, mark.line + 1, mark.column + 1, _dotted(loc), f"unknown key{hint}"
        )
    if "[key]" in err["loc"]:
        key_node = _key_node(root, loc)
        mark = key_node.start_mark if key_node is not None else root.start_mark
        message = _reword(err["msg"])
        return PolicyIssue(
            source, mark.line + 1, mark.column + 1, _dotted(loc), f"invalid name: {message}"
        )
    node, _found, _ = _find(root, loc)
    mark = node.start_mark
    message = _reword(err["msg"])
    if not isinstance(err.get("input"), dict | list):
        message += f"; got {err.get('input')!r}"
    return PolicyIssue(source, mark.line + 1, mark.column + 1, _dotted(loc), message)


def _reword(message: str) -> str:
    return re.sub(r"^(Input|Value) should be", "expected", message).replace("Value error, ", "")


def _allowed_keys(loc: Loc, model: type[BaseModel] = Policy) -> list[str]:
    """The keys the schema accepts at ``loc`` (for 'did you mean' style hints)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        candidates = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(candidates[0]) if len(candidates) == 1 else annotation
    if origin is not None and hasattr(annotation, "__metadata__"):
        return _unwrap(get_args(annotation)[0])
    return annotation
