"""Versioned prompt templates (YAML), validated at start, pinned by digest, recorded."""

from bastion.prompts.errors import (
    PromptChanged,
    PromptFileError,
    PromptNotFound,
    PromptVariablesError,
)
from bastion.prompts.library import (
    BUILTIN_DIR,
    BUILTIN_LOCK,
    Prompt,
    PromptLibrary,
    Rendered,
    diff,
    parse_prompt,
    render,
    sources_for,
    spec_digest,
)

__all__ = [
    "BUILTIN_DIR",
    "BUILTIN_LOCK",
    "Prompt",
    "PromptChanged",
    "PromptFileError",
    "PromptLibrary",
    "PromptNotFound",
    "PromptVariablesError",
    "Rendered",
    "diff",
    "parse_prompt",
    "render",
    "sources_for",
    "spec_digest",
]
