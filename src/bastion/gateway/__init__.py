"""The governed LLM gateway (see docs/gateway.md).

Public names, loaded on first use so that a light module (the counters, the error
types) can be imported without building the whole data path:

- :class:`Gateway` and :func:`build_gateway`: the data path, built from the runtime;
- :class:`Lifecycle`, :class:`Call`, :class:`Reply`: one governed call's stages and
  record, reused by every kind of call (chat, embeddings, and what comes later);
- :class:`Health`, :class:`Resilience`: per-deployment health (circuit breakers),
  retries, fallbacks;
- :func:`create_counters`: rate-limit and budget counters (in process or Redis);
- the errors callers meet: ``ModelNotFound``, ``ModelNotAllowed``, ``RequestTooLarge``,
  ``ContextLengthExceeded``, ``RateLimited``, ``BudgetExceeded``,
  ``CountersUnavailable``, ``UpstreamFailure``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import lazy_exports

if TYPE_CHECKING:
    from bastion.gateway.breaker import Health
    from bastion.gateway.calls import Call, Reply
    from bastion.gateway.counters import create_counters
    from bastion.gateway.errors import (
        BudgetExceeded,
        ContextLengthExceeded,
        CountersUnavailable,
        ModelNotAllowed,
        ModelNotFound,
        RateLimited,
        RequestTooLarge,
        UpstreamFailure,
    )
    from bastion.gateway.lifecycle import Lifecycle
    from bastion.gateway.resilience import Resilience
    from bastion.gateway.service import Gateway
    from bastion.gateway.setup import build_gateway

_EXPORTS = {
    "Health": "bastion.gateway.breaker",
    "Call": "bastion.gateway.calls",
    "Reply": "bastion.gateway.calls",
    "create_counters": "bastion.gateway.counters",
    **dict.fromkeys(
        (
            "BudgetExceeded",
            "ContextLengthExceeded",
            "CountersUnavailable",
            "ModelNotAllowed",
            "ModelNotFound",
            "RateLimited",
            "RequestTooLarge",
            "UpstreamFailure",
        ),
        "bastion.gateway.errors",
    ),
    "Lifecycle": "bastion.gateway.lifecycle",
    "Resilience": "bastion.gateway.resilience",
    "Gateway": "bastion.gateway.service",
    "build_gateway": "bastion.gateway.setup",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "BudgetExceeded",
    "Call",
    "ContextLengthExceeded",
    "CountersUnavailable",
    "Gateway",
    "Health",
    "Lifecycle",
    "ModelNotAllowed",
    "ModelNotFound",
    "RateLimited",
    "Reply",
    "RequestTooLarge",
    "Resilience",
    "UpstreamFailure",
    "build_gateway",
    "create_counters",
]
