"""Personal data and deny-listed terms in tool arguments and results.

The gateway's privacy guard does the work (:mod:`bastion.privacy`): the policy's
recognizers, operators, vault and deny-list. A tool (or its server) chooses what the
guard does with findings (:class:`~bastion.toolgate.config.ToolPrivacy`); one guard is
built per such choice and shares the analyzer of the others.

Arguments: every string value is checked (keys are names the schema fixes, not data).
Results: every ``text`` of the content blocks, resource contents and prompt messages,
and every string of ``structuredContent``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from bastion.policy.schema import Policy
from bastion.privacy import PrivacyGuard, PrivacyKeys
from bastion.privacy.vault import Vault
from bastion.toolgate.config import ToolPrivacy

M = TypeVar("M", bound=BaseModel)


class ToolGuards:
    """Privacy guards for the policy in force, one per :class:`ToolPrivacy` choice."""

    def __init__(self, keys: PrivacyKeys) -> None:
        self.keys = keys
        self._policy: Policy | None = None
        self._guards: dict[ToolPrivacy, PrivacyGuard] = {}

    def guard(self, policy: Policy, choice: ToolPrivacy) -> PrivacyGuard:
        if self._policy is not policy:
            self._policy, self._guards = policy, {}
        guard = self._guards.get(choice)
        if guard is None:
            base = next(iter(self._guards.values()), None)
            privacy = policy.privacy.model_copy(
                update={
                    "prompt": policy.privacy.prompt.model_copy(update={"action": choice.arguments}),
                    "response": policy.privacy.response.model_copy(
                        update={"action": choice.results, "restore": choice.restore}
                    ),
                }
            )
            guard = PrivacyGuard(
                privacy,
                policy.denylist,
                keys=self.keys,
                analyzer=base.analyzer if base is not None else None,
            )
            self._guards[choice] = guard
        return guard


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    return value


def protect_arguments(
    guard: PrivacyGuard, arguments: dict[str, Any], vault: Vault
) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    """The arguments masked (or checked) per the guard; raises PrivacyError to refuse."""
    counts: Counter[str] = Counter()
    flags: set[str] = set()

    def fn(text: str) -> str:
        protected = guard.protect_text(text, vault)
        counts.update(protected.counts)
        flags.update(protected.flags)
        return protected.value

    masked: dict[str, Any] = map_strings(arguments, fn)
    return masked, dict(counts), sorted(flags)


def check_result(guard: PrivacyGuard, result: M, vault: Vault) -> tuple[M, list[str]]:
    """A result scanned (flag, redact or block) and its placeholders restored."""
    flags: set[str] = set()

    def fn(text: str) -> str:
        checked = guard.check_response(text, vault)
        flags.update(checked.flags)
        return checked.text

    body = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    changed = _map_texts(body, fn)
    return type(result).model_validate(changed), sorted(flags)


def _map_texts(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                out[key] = fn(item)
            elif key == "structuredContent":
                out[key] = map_strings(item, fn)
            elif key == "_meta":
                out[key] = item
            else:
                out[key] = _map_texts(item, fn)
        return out
    if isinstance(value, list):
        return [_map_texts(v, fn) for v in value]
    return value
