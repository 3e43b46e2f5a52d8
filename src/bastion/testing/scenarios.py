"""How a model name tells the fake upstream to behave.

A model name (the ``model`` field, an Azure deployment, an Anthropic model) is either an
ordinary name (``gpt-4o``, ``claude-test``: answered normally) or a scenario::

    name     := part ("+" part)*
    part     := keyword | keyword ":" number

Each part is a modifier (``delay:MS``, ``first-token-delay:MS``, ``no-usage``,
``no-done``, and the event-stream liberties of ``quirks``: ``crlf``, ``split:SEED`` …)
or a fault (every other keyword); a name holds at most one fault and each
modifier once, so ``delay:60``, ``delay:200+cut:3`` and ``no-usage+no-done`` are names.
A name with a ``:`` or ``+`` must parse, and so must a bare keyword: a typo such as
``cutt:3`` or ``delay`` is answered with a 400 (code ``unknown_scenario``) rather than
silently served. (So OpenAI-compatible names with a colon, Ollama's ``llama3:8b``, are
not accepted.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .quirks import QUIRKS

# keyword -> the kind of number it takes: None (no parameter), int or float
MODIFIERS: dict[str, type[int] | type[float] | None] = {
    "delay": int,  # ms before answering (headers included)
    "first-token-delay": int,  # ms between the headers and the first chunk
    "no-usage": None,
    "no-done": None,
    "prompt-tokens": int,  # report this many prompt tokens in usage (a provider counts more)
    # streams: liberties of the event stream (see ``quirks``)
    **dict.fromkeys(QUIRKS),
    "split": int,  # the stream's bytes cut at random places, this the seed
}
FAULTS: dict[str, type[int] | type[float] | None] = {
    "ok": None,
    "429": None,
    "429-retry-after": int,
    "500-once": None,
    "503": None,
    "reset": None,
    "hang": None,
    "cut": int,
    "stall": int,
    "malformed": None,
    "context-length": None,
    "content-policy": None,
    "flap": float,
    "error-mid-stream": None,
    "bad-chunk": None,
    "leak": None,
}
KEYWORDS = {**MODIFIERS, **FAULTS}


class ScenarioError(ValueError):
    """A model name that looks like a scenario but is not one."""


@dataclass(frozen=True, slots=True)
class Scenario:
    fault: str = "ok"
    param: float = 0.0
    delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    no_usage: bool = False
    no_done: bool = False
    prompt_tokens: int = 0
    quirks: frozenset[str] = frozenset()
    split: int | None = None

    @property
    def count(self) -> int:
        """The integer parameter (``cut:N``, ``stall:N``, ``429-retry-after:S``)."""
        return int(self.param)


OK = Scenario()


@functools.lru_cache(maxsize=4096)
def parse(name: str) -> Scenario:
    """The scenario a model name asks for; raises ScenarioError on a malformed one."""
    if ":" not in name and "+" not in name and name not in KEYWORDS:
        return OK
    fault, param = "ok", 0.0
    mods: dict[str, float] = {}
    for part in name.split("+"):
        keyword, colon, raw = part.partition(":")
        if keyword not in KEYWORDS:
            raise ScenarioError(
                f"unknown scenario {keyword!r} in model name {name!r}; "
                f"known: {', '.join(sorted(KEYWORDS))}"
            )
        kind = KEYWORDS[keyword]
        if kind is None and colon:
            raise ScenarioError(f"scenario {keyword!r} takes no parameter (in {name!r})")
        value = 0.0
        if kind is not None:
            try:
                value = float(kind(raw))
            except ValueError:
                raise ScenarioError(
                    f"scenario {keyword!r} needs a {kind.__name__} parameter, "
                    f"e.g. {keyword}:3 (in {name!r})"
                ) from None
            if value < 0:
                raise ScenarioError(f"scenario {keyword!r} needs a parameter >= 0 (in {name!r})")
        if keyword in MODIFIERS:
            if keyword in mods:
                raise ScenarioError(f"modifier {keyword!r} given twice in {name!r}")
            mods[keyword] = value
        elif fault != "ok":
            raise ScenarioError(f"model name {name!r} asks for two faults; give one")
        else:
            fault, param = keyword, value
    return Scenario(
        fault=fault,
        param=param,
        delay_s=mods.get("delay", 0.0) / 1000,
        first_token_delay_s=mods.get("first-token-delay", 0.0) / 1000,
        no_usage="no-usage" in mods,
        no_done="no-done" in mods,
        prompt_tokens=int(mods.get("prompt-tokens", 0)),
        quirks=frozenset(q for q in QUIRKS if q in mods),
        split=int(mods["split"]) if "split" in mods else None,
    )
