"""Errors of the prompt library.

BastionError
├── InvalidInput
│   ├── PromptFileError        invalid_prompt (every issue with its file and line)
│   └── PromptVariablesError   invalid_prompt_variables
├── NotFound
│   └── PromptNotFound         prompt_not_found
└── Conflict
    └── PromptChanged          prompt_changed_without_version
"""

from __future__ import annotations

from bastion.errors import Conflict, InvalidInput, NotFound
from bastion.policy.loader import PolicyError


class PromptFileError(PolicyError):
    """Every problem of the prompt files, each with its file, line and key (the policy
    file's machinery: :func:`bastion.policy.loader.parse_document`)."""

    code = "invalid_prompt"
    what = "the prompts"


class PromptVariablesError(InvalidInput):
    code = "invalid_prompt_variables"


class PromptNotFound(NotFound):
    code = "prompt_not_found"


class PromptChanged(Conflict):
    code = "prompt_changed_without_version"
