"""Model cards and data cards, as Markdown and HTML, from what the registry knows.

Generated sections (training data, metrics, fairness, approvals, stage history) are
rebuilt on every render. Editable sections are written by people: they are stored in
the registry and, in a Markdown card, sit between ``<!-- bastion:edit FIELD -->`` and
``<!-- bastion:end -->``. Regenerating a card from an edited file reads those blocks
back first, so nobody's writing is lost to a regeneration.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from bastion.registry.errors import InvalidCard

CardKind = Literal["model", "data"]

FIELDS: dict[str, dict[str, str]] = {
    "model": {
        "intended_use": "What the model is for, and who acts on its decisions.",
        "out_of_scope": "Uses it must not be put to.",
        "limitations": "Known limitations and failure modes.",
        "ethical_considerations": "Risks to people, and how they are mitigated.",
        "owners": "Who answers for this model.",
    },
    "data": {
        "motivation": "Why the data was collected, and by whom.",
        "collection": "How and when it was collected.",
        "preprocessing": "Cleaning, filtering and sampling applied before training.",
        "known_biases": "Groups under- or over-represented; label quality.",
        "license": "Licence and terms of use.",
    },
}
MAX_FIELD_CHARS = 20_000

_BLOCK = re.compile(r"<!-- bastion:edit ([a-z_]+) -->\n(.*?)\n?<!-- bastion:end -->", re.DOTALL)
_OPENER = re.compile(r"<!-- bastion:edit ([a-z_]+) -->")
_END = "<!-- bastion:end -->"
_MARKER = "<!-- bastion:"


def placeholder(kind: str, field: str) -> str:
    return f"_Not written yet: {FIELDS[kind][field]}_"


def check_fields(kind: str, fields: dict[str, str]) -> dict[str, str]:
    known = FIELDS.get(kind)
    if known is None:
        raise InvalidCard(f"unknown card kind {kind!r}: use model or data")
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise InvalidCard(
            f"a {kind} card has no field {', '.join(unknown)}; its fields are {', '.join(known)}"
        )
    for field, text in fields.items():
        if not isinstance(text, str) or len(text) > MAX_FIELD_CHARS:
            raise InvalidCard(f"{field} must be text of at most {MAX_FIELD_CHARS} characters")
        if _MARKER in text:
            raise InvalidCard(f"{field} contains a card marker ({_MARKER}…): remove it")
    return {k: v.strip() for k, v in fields.items()}


def read_edits(kind: str, markdown: str) -> dict[str, str]:
    """The editable blocks of a card file (placeholders count as not written).

    A block whose end marker was deleted would swallow the next one, and regenerating
    would then drop what was written in either: refused, saying which block it is."""
    blocks = _BLOCK.findall(markdown)
    opened = _OPENER.findall(markdown)
    swallowing = [f for f, body in blocks if _OPENER.search(body)]
    if swallowing or len(opened) != len(blocks):
        field = swallowing[0] if swallowing else opened[len(blocks)]
        raise InvalidCard(
            f"the card's editable section {field!r} has lost its end marker: put "
            "`<!-- bastion:end -->` back on the line after its text, then regenerate "
            "(nothing was overwritten)"
        )
    if markdown.count(_END) > len(blocks):
        raise InvalidCard(
            f"an editable section of the card has lost its start marker: put "
            f"`<!-- bastion:edit FIELD -->` back on the line before its text (fields: "
            f"{', '.join(FIELDS.get(kind, {}))}), then regenerate (nothing was overwritten)"
        )
    found = {}
    for field, body in blocks:
        if field in FIELDS.get(kind, {}):
            text = body.strip()
            found[field] = "" if text == placeholder(kind, field) else text
    return found


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bastion.registry", "templates"),
        # HTML is escaped; Markdown is text a person reads, rendered by their viewer.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = _fmt
    return env


def render(kind: CardKind, fmt: Literal["markdown", "html"], context: dict[str, Any]) -> str:
    fields = context["fields"]
    editable = [
        {
            "name": f,
            "title": f.replace("_", " ").capitalize(),
            "text": fields.get(f) or "",
            "placeholder": placeholder(kind, f),
        }
        for f in FIELDS[kind]
    ]
    name = f"{kind}_card.md.j2" if fmt == "markdown" else "card.html.j2"
    return str(_env().get_template(name).render(kind=kind, editable=editable, **context))
