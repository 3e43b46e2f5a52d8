"""OpenAI, Azure OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio).

The request is forwarded as the client sent it (unknown fields included), with the
model renamed to the upstream's name; streams ask for usage
(``stream_options.include_usage``) so that billing does not depend on counting. Azure
addresses a deployment (the model's ``upstream_model``) under
``/openai/deployments/{deployment}`` with an ``api-version`` and an ``api-key`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bastion import jsonio
from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import (
    JSON,
    HttpRequest,
    Provider,
    StreamTranslator,
    Target,
    error_fields,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"
AZURE_API_VERSION = "2024-10-21"


def _check_choices(choices: Any, part: str, what: str) -> None:
    """Choices must be objects whose ``part`` (``delta``, ``message``) is an object: a
    chunk of another shape is the upstream's fault, not a reason to fail inside Bastion."""
    if not isinstance(choices, list):
        raise UpstreamFailure("malformed", f"the upstream sent {what} whose choices are not a list")
    for choice in choices:
        if (
            not isinstance(choice, dict)
            or not isinstance(choice.get("index", 0), int)
            or not isinstance(choice.get(part) or {}, dict)
        ):
            raise UpstreamFailure("malformed", f"the upstream sent {what} of the wrong shape")


class OpenAIStream(StreamTranslator):
    def feed(self, event: str | None, data: str) -> list[JSON]:
        if data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            chunk = jsonio.loads(data)
        except ValueError:
            raise UpstreamFailure(
                "malformed", "the upstream sent a stream chunk that is not JSON"
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamFailure(
                "malformed", "the upstream sent a stream chunk that is not an object"
            )
        if "error" in chunk:
            message, code = error_fields(data.encode())
            raise UpstreamFailure("server_error", message, upstream_code=code)
        if event == "error":
            raise UpstreamFailure("server_error", str(chunk)[:500])
        _check_choices(chunk.get("choices") or [], "delta", "a stream chunk")
        if chunk.get("usage") is not None and not isinstance(chunk["usage"], dict):
            raise UpstreamFailure(
                "malformed", "the upstream sent a stream chunk of the wrong shape"
            )
        return [chunk]


class OpenAIProvider(Provider):
    kind = "openai"

    def _url(self, target: Target, path: str) -> str:
        return (target.base_url or OPENAI_BASE_URL) + path

    def _headers(self, target: Target) -> dict[str, str]:
        headers = dict(target.config.headers)
        if target.api_key is not None:
            headers["Authorization"] = f"Bearer {target.api_key.get_secret_value()}"
        return headers

    def max_tokens_field(self, target: Target) -> str:
        if target.config.max_tokens_field is not None:
            return target.config.max_tokens_field
        official = (target.base_url or OPENAI_BASE_URL).startswith(OPENAI_BASE_URL)
        return "max_completion_tokens" if official else "max_tokens"

    def chat_request(self, target: Target, body: Mapping[str, Any], *, stream: bool) -> HttpRequest:
        payload = dict(body)
        payload["model"] = target.upstream_model
        field = self.max_tokens_field(target)
        other = "max_tokens" if field == "max_completion_tokens" else "max_completion_tokens"
        if other in payload and field not in payload:
            payload[field] = payload.pop(other)
        if stream:
            payload["stream"] = True
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            payload["stream_options"] = options
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        return HttpRequest(self._url(target, "/chat/completions"), payload, self._headers(target))

    def chat_response(self, target: Target, data: JSON) -> JSON:
        if not isinstance(data.get("choices"), list):
            raise UpstreamFailure("malformed", "the upstream's answer has no choices")
        _check_choices(data["choices"], "message", "an answer")
        return data

    def chat_stream(self, target: Target) -> StreamTranslator:
        return OpenAIStream()

    def embeddings_request(self, target: Target, body: Mapping[str, Any]) -> HttpRequest:
        payload = dict(body)
        payload["model"] = target.upstream_model
        return HttpRequest(self._url(target, "/embeddings"), payload, self._headers(target))

    def embeddings_response(self, target: Target, data: JSON) -> JSON:
        if not isinstance(data.get("data"), list):
            raise UpstreamFailure("malformed", "the upstream's embeddings answer has no data")
        return data


class AzureOpenAIProvider(OpenAIProvider):
    kind = "azure"

    def max_tokens_field(self, target: Target) -> str:
        return target.config.max_tokens_field or "max_completion_tokens"

    def _url(self, target: Target, path: str) -> str:
        if not target.base_url:
            raise UpstreamFailure(
                "bad_request", f"provider {target.provider!r} (azure) needs a base_url"
            )
        version = target.config.api_version or AZURE_API_VERSION
        deployment = quote(target.upstream_model, safe="")
        return f"{target.base_url}/openai/deployments/{deployment}{path}?api-version={version}"

    def _headers(self, target: Target) -> dict[str, str]:
        headers = dict(target.config.headers)
        if target.api_key is not None:
            headers["api-key"] = target.api_key.get_secret_value()
        return headers
