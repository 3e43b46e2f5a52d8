"""Errors the gateway returns, each with a stable code and OpenAI's error shape.

Refusals before any upstream call (``model_not_found``, ``model_not_allowed``,
``max_tokens_exceeded``, ``context_length_exceeded``, ``rate_limit_exceeded``,
``budget_exceeded``, ``counters_unavailable``) and failures of the upstream after
retries and fallbacks (``upstream_error``, ``upstream_timeout``, ``upstream_unavailable``,
``circuit_open``). An upstream's own refusal that must not be retried
(``context_length_exceeded``, ``content_policy_violation``) keeps the provider's code
and message, so SDK users see what they would have seen calling the provider.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from bastion.errors import BastionError, Forbidden, InvalidInput, NotFound, Unavailable


class ModelNotFound(NotFound):
    code = "model_not_found"


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"


class RequestTooLarge(InvalidInput):
    code = "max_tokens_exceeded"


class ContextLengthExceeded(InvalidInput):
    code = "context_length_exceeded"


class TooManyRequests(BastionError):
    """Refused by a limit; ``retry_after`` (seconds) goes into ``Retry-After``."""

    status = 429
    code = "rate_limit_exceeded"
    type = "rate_limit_error"

    def __init__(
        self, message: str, *, retry_after: float, code: str | None = None, **details: Any
    ) -> None:
        super().__init__(message, code=code, **details)
        self.retry_after = max(0.0, retry_after)


class RateLimited(TooManyRequests):
    code = "rate_limit_exceeded"


class BudgetExceeded(TooManyRequests):
    code = "budget_exceeded"
    type = "insufficient_quota"


class CountersUnavailable(Unavailable):
    code = "counters_unavailable"


FailureKind = Literal[
    "rate_limited",
    "server_error",
    "connect",
    "timeout",
    "first_token_timeout",
    "stall",
    "malformed",
    "context_length_exceeded",
    "content_policy",
    "bad_request",
    "auth",
    "not_found",
    "circuit_open",
]

#: Failures worth another attempt on the same model.
RETRYABLE: frozenset[str] = frozenset(
    {"rate_limited", "server_error", "connect", "timeout", "first_token_timeout"}
)
#: Failures a fallback model may still serve (everything but the caller's own mistake).
FALLBACK_OK: frozenset[str] = RETRYABLE | {
    "stall",
    "malformed",
    "context_length_exceeded",
    "circuit_open",
    "auth",
    "not_found",
}


class UpstreamFailure(BastionError):
    """One failed attempt at an upstream, classified.

    ``kind`` decides what happens next (retry, fall back, give up);
    ``retry_after`` is the upstream's ``Retry-After`` in seconds, when it sent one;
    ``connection`` is true when no byte came back (refused, DNS, TLS, a reset before
    the response): the host, not the model, may be down.
    """

    status = 502
    code = "upstream_error"
    type = "api_error"
    STATUS_BY_KIND: ClassVar[dict[str, int]] = {
        "rate_limited": 429,
        "timeout": 504,
        "first_token_timeout": 504,
        "stall": 504,
        "context_length_exceeded": 400,
        "content_policy": 400,
        "bad_request": 400,
        "circuit_open": 503,
    }
    CODE_BY_KIND: ClassVar[dict[str, str]] = {
        "rate_limited": "upstream_rate_limited",
        "timeout": "upstream_timeout",
        "first_token_timeout": "upstream_timeout",
        "stall": "upstream_stalled",
        "connect": "upstream_unavailable",
        "context_length_exceeded": "context_length_exceeded",
        "content_policy": "content_policy_violation",
        "bad_request": "upstream_bad_request",
        "circuit_open": "circuit_open",
        "malformed": "upstream_malformed_response",
    }

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        upstream_code: str | None = None,
        connection: bool = False,
    ) -> None:
        super().__init__(message, code=self.CODE_BY_KIND.get(kind, "upstream_error"))
        self.kind: FailureKind = kind
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.upstream_code = upstream_code
        self.connection = connection
        self.status = self.STATUS_BY_KIND.get(kind, 502)  # type: ignore[misc]
        if kind in ("context_length_exceeded", "content_policy", "bad_request"):
            self.type = "invalid_request_error"  # type: ignore[misc]

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE
