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
from bastion.policy.loader import PolicyIssue


class PromptFileError(InvalidInput):
    code = "invalid_prompt"

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        n = len(issues)
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"the prompts have {n} error{'s' if n != 1 else ''}:\n{lines}")


class PromptVariablesError(InvalidInput):
    code = "invalid_prompt_variables"


class PromptNotFound(NotFound):
    code = "prompt_not_found"


class PromptChanged(Conflict):
    code = "prompt_changed_without_version"
