"""Success criteria read from a step's output: ``metrics.roc_auc >= 0.85``.

One comparison a criterion: a dotted path into the step's output (a JSON object), an
operator (``>= > <= < == !=``) and a number, ``true``/``false`` or a quoted string.
Nothing is evaluated as code. A path that is missing from the output fails the
criterion and says so (a step that forgot to report its metric has not shown it met
the bar).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
SHAPE = re.compile(
    r"^\s*(?P<path>[A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>.+?)\s*$"
)


@dataclass(frozen=True)
class Verdict:
    criterion: str
    passed: bool
    actual: Any
    detail: str


@dataclass(frozen=True)
class Criterion:
    text: str
    path: tuple[str, ...]
    op: str
    value: float | str | bool

    @classmethod
    def parse(cls, text: str) -> Criterion:
        match = SHAPE.match(text)
        if match is None:
            raise ValueError(
                f"criterion {text!r}: expected `path op value`, e.g. `metrics.roc_auc >= 0.85`"
            )
        raw = match.group("value")
        value: float | str | bool
        if raw in ("true", "false"):
            value = raw == "true"
        elif raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) >= 2:
            value = raw[1:-1]
        else:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(
                    f"criterion {text!r}: {raw!r} is not a number, true/false or a quoted string"
                ) from None
            if not math.isfinite(value):
                raise ValueError(f"criterion {text!r}: the bound must be finite")
        if isinstance(value, (str, bool)) and match.group("op") not in ("==", "!="):
            raise ValueError(f"criterion {text!r}: only == and != compare strings and booleans")
        return cls(text, tuple(match.group("path").split(".")), match.group("op"), value)

    def check(self, output: dict[str, Any]) -> Verdict:
        current: Any = output
        for part in self.path:
            if not isinstance(current, dict) or part not in current:
                where = ".".join(self.path)
                return Verdict(self.text, False, None, f"{where} is not in the step's output")
            current = current[part]
        if isinstance(self.value, float):
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                return Verdict(self.text, False, current, f"{json.dumps(current)} is not a number")
            if not math.isfinite(current):
                return Verdict(self.text, False, current, f"{current} is not a finite number")
        passed = bool(OPERATORS[self.op](current, self.value))
        return Verdict(self.text, passed, current, f"{'.'.join(self.path)} = {current!r}")
