"""A prompt file's schema (``prompts/*.yaml``): one prompt, one version.

Example::

    name: query
    version: 2
    description: Answer a question from numbered passages, citing them.
    variables:
      question: {description: The user's question, max_chars: 4000}
      passages: {description: "Retrieved passages: n, document, location, text", kind: list}
    model:                      # hints, not orders: the caller's model wins
      temperature: 0
      max_tokens: 512
    messages:
      - role: system
        content: |
          Answer only from the passages ...
      - role: user
        content: |
          Question: {{ question }}
          ...

Templates are Jinja2 (sandboxed, undefined variables are errors). Every variable a
template uses must be declared, and every declared variable must be used.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

PromptName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.-]*$")]
VariableName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variable(_Strict):
    description: str = ""
    kind: Literal["text", "list", "number"] = "text"
    required: bool = True
    #: The longest text (or list) a render accepts: a prompt's size stays bounded.
    max_chars: Annotated[int, Field(ge=1)] | None = None
    max_items: Annotated[int, Field(ge=1)] | None = None


class ModelHints(_Strict):
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=100_000)] | None = None
    #: Models the prompt was written and checked for (informative).
    tested_with: list[str] = Field(default_factory=list)


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(min_length=1)]


class PromptSpec(_Strict):
    name: PromptName
    version: Annotated[int, Field(ge=1)]
    description: str = ""
    variables: dict[VariableName, Variable] = Field(default_factory=dict)
    model: ModelHints = ModelHints()
    messages: Annotated[list[Message], Field(min_length=1)]
