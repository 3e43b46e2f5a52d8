"""What a provider is: a pure transform between OpenAI's wire format and an upstream's.

Bastion speaks OpenAI's chat-completions and embeddings shapes to its clients. A
provider turns such a request into the upstream's HTTP request, and the upstream's
answer (a JSON body, or server-sent events) back into OpenAI's shapes. Providers do no
I/O: the transport (:mod:`bastion.gateway.upstream`) sends what they build, handles
timeouts and retries, and feeds them what comes back. The ``local`` provider has no
upstream; it answers in-process (:class:`InProcessProvider`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from bastion.gateway.errors import FailureKind, UpstreamFailure
from bastion.policy.schema import ProviderConfig

JSON = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """Where one attempt goes: a policy model resolved to its provider."""

    model: str  # the policy's model name, as the client asked for it (or a fallback)
    upstream_model: str  # the name the upstream knows (an Azure deployment for azure)
    provider: str  # the policy's provider name
    config: ProviderConfig
    api_key: SecretStr | None = None

    @property
    def base_url(self) -> str:
        return str(self.config.base_url).rstrip("/") if self.config.base_url else ""


@dataclass(frozen=True)
class HttpRequest:
    url: str
    json: JSON
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


class StreamTranslator(ABC):
    """Turns one upstream stream's server-sent events into OpenAI chunk dicts."""

    #: True once the upstream's end-of-stream marker was seen (``[DONE]``, ``message_stop``).
    done: bool = False

    @abstractmethod
    def feed(self, event: str | None, data: str) -> list[JSON]:
        """OpenAI ``chat.completion.chunk`` dicts for one SSE event (maybe none).

        Raises :class:`UpstreamFailure` (``malformed``) for data that is not what the
        upstream's protocol allows, and for an error event the upstream sends mid-stream.
        """


class Provider(ABC):
    """An HTTP upstream's request and response transforms."""

    kind: str

    @abstractmethod
    def chat_request(self, target: Target, body: Mapping[str, Any], *, stream: bool) -> HttpRequest:
        """The upstream request for an OpenAI chat-completions body.

        ``body["model"]`` is already ``target.upstream_model``; with ``stream`` the
        request asks for a stream and, where the upstream supports it, for usage.
        """

    @abstractmethod
    def chat_response(self, target: Target, data: JSON) -> JSON:
        """An OpenAI ``chat.completion`` dict from the upstream's JSON answer."""

    @abstractmethod
    def chat_stream(self, target: Target) -> StreamTranslator:
        """A translator for one streamed answer."""

    def embeddings_request(self, target: Target, body: Mapping[str, Any]) -> HttpRequest:
        raise UpstreamFailure("bad_request", f"provider {self.kind!r} does not offer embeddings")

    def embeddings_response(self, target: Target, data: JSON) -> JSON:
        return data

    def classify_error(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamFailure:
        """An upstream's non-2xx answer as a classified failure (see :func:`classify_http`)."""
        return classify_http(status, body, headers)


class InProcessProvider(ABC):
    """A provider that answers in-process (``local``): no HTTP, same shapes."""

    kind: str

    @abstractmethod
    async def complete(self, target: Target, body: Mapping[str, Any]) -> JSON:
        """A ``chat.completion`` dict, with ``usage``."""

    @abstractmethod
    def stream(self, target: Target, body: Mapping[str, Any]) -> AsyncIterator[JSON]:
        """``chat.completion.chunk`` dicts; the last carries ``usage`` (as with
        ``stream_options.include_usage``)."""

    @abstractmethod
    async def embed(self, target: Target, body: Mapping[str, Any]) -> JSON:
        """An OpenAI embeddings answer (``object: list``, ``data``, ``usage``)."""


_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "prompt is too long",
    "context window",
    "too many tokens",
)
_POLICY_MARKERS = ("content_policy", "content_filter", "content management policy", "safety system")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_fields(body: bytes) -> tuple[str, str | None]:
    """(message, code) from an OpenAI- or Anthropic-shaped error body, tolerantly."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        text = body[:500].decode("utf-8", "replace").strip()
        return (text or "no error body", None)
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        code = err.get("code") or err.get("type")
        return (message or "no error message", str(code) if code else None)
    if isinstance(err, str):
        return (err, None)
    return (str(data)[:500], None)


def classify_http(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamFailure:
    message, code = error_fields(body)
    haystack = f"{code or ''} {message}".lower()
    kind: FailureKind
    if any(m in haystack for m in _CONTEXT_MARKERS):
        kind = "context_length_exceeded"
    elif any(m in haystack for m in _POLICY_MARKERS):
        kind = "content_policy"
    elif status == 429:
        kind = "rate_limited"
    elif status in (401, 403):
        kind = "auth"
    elif status == 404:
        kind = "not_found"
    elif status == 408:
        kind = "timeout"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "bad_request"
    return UpstreamFailure(
        kind,
        message,
        upstream_status=status,
        retry_after=parse_retry_after(headers),
        upstream_code=code,
    )
