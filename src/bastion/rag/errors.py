"""Errors of answers and research.

BastionError
├── InvalidInput
│   └── NotGrounded        422 not_grounded (the best passages found are attached)
└── Forbidden
    └── ToolNotAllowed     403 tool_not_allowed (recorded, the run goes on)
"""

from __future__ import annotations

from typing import Any

from bastion.errors import Forbidden, InvalidInput


class NotGrounded(InvalidInput):
    status = 422
    code = "not_grounded"

    def __init__(self, message: str, passages: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.passages = passages


class ToolNotAllowed(Forbidden):
    code = "tool_not_allowed"


class ToolArgumentRefused(InvalidInput):
    status = 422
    code = "tool_argument_refused"
