"""Prometheus metrics, correct when uvicorn runs several worker processes.

``bastion serve --workers N`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start; prometheus-client then keeps each worker's values in files
there and ``/metrics`` sums them. With one process, values live in memory. Metrics are
created per app (not at import) with no global registry, so tests can build many apps.
Labels are low-cardinality: never a key, user or request id.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.registry import Collector

OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5)
#: Bucket bounds the OpenTelemetry GenAI conventions advise for operation durations and
#: time to first chunk (seconds), and for token counts.
GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92
)  # fmt: skip
GENAI_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864
)  # fmt: skip
#: The GenAI conventions' attributes, as Prometheus label names (dots become underscores).
GENAI_LABELS = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
]
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        # In multiprocess mode values go to files; registering them would double-count.
        registry = None if multiprocess_dir else CollectorRegistry()
        self._registry = registry
        # Read at scrape time from the shared database (the monitoring checks run as
        # commands no Prometheus scrapes: bastion.monitoring.signals), by name.
        self._collectors: dict[str, Collector] = {}
        self.http_requests = Counter(
            "bastion_http_requests",
            "HTTP requests served, by route template, method and status class.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "bastion_http_request_duration_seconds",
            "Time to serve an HTTP request.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.policy_reloads = Counter(
            "bastion_policy_reloads",
            "Policy reload attempts by outcome (success, unchanged, error).",
            ["outcome"],
            registry=registry,
        )
        self.policy_loaded_timestamp = Gauge(
            "bastion_policy_loaded_timestamp_seconds",
            "When the policy in force was loaded (Unix time).",
            registry=registry,
            multiprocess_mode="max",
        )
        self.auth_failures = Counter(
            "bastion_auth_failures",
            "Requests refused by authentication or authorisation, by error code.",
            ["code"],
            registry=registry,
        )

        # The gateway. ``model`` is a policy model name ("unknown" for names not in the
        # policy), ``provider`` a policy provider name: both bounded by the policy.
        self.llm_requests = Counter(
            "bastion_llm_requests",
            "Gateway calls by endpoint, model and outcome (success, refused, failure, "
            "cancelled, error).",
            ["endpoint", "model", "outcome"],
            registry=registry,
        )
        self.llm_tokens = Counter(
            "bastion_llm_tokens",
            "Tokens through the gateway, by model and direction (input, output).",
            ["model", "direction"],
            registry=registry,
        )
        self.llm_cost = Counter(
            "bastion_llm_cost_usd",
            "Cost of gateway calls in USD, by the model that served them.",
            ["model"],
            registry=registry,
        )
        self.llm_rate_limited = Counter(
            "bastion_llm_rate_limited",
            "Calls refused by a rate limit, by scope kind (key, user, team) and metric.",
            ["scope", "metric"],
            registry=registry,
        )
        self.llm_budget_refused = Counter(
            "bastion_llm_budget_refused",
            "Calls refused because a budget could be overrun, by scope kind and window.",
            ["scope", "per"],
            registry=registry,
        )
        self.llm_counter_errors = Counter(
            "bastion_llm_counter_errors",
            "Rate-limit and budget counters that could not be reached, by step.",
            ["step"],
            registry=registry,
        )
        self.llm_reservation_exceeded = Counter(
            "bastion_llm_reservation_exceeded",
            "Calls whose settled cost was above their worst-case reservation (the upstream "
            "counted more tokens than the estimate), by model.",
            ["model"],
            registry=registry,
        )
        self.llm_attempts = Counter(
            "bastion_llm_upstream_attempts",
            "Attempts at upstreams, by provider and outcome (ok or a failure kind).",
            ["provider", "outcome"],
            registry=registry,
        )
        self.llm_duration = Histogram(
            "bastion_llm_request_duration_seconds",
            "Whole gateway calls, by endpoint and model.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.llm_upstream_duration = Histogram(
            "bastion_llm_upstream_duration_seconds",
            "Time spent waiting on upstreams per call, by provider.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.llm_ttft = Histogram(
            "bastion_llm_time_to_first_token_seconds",
            "Time to a stream's first chunk, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.llm_overhead = Histogram(
            "bastion_llm_overhead_seconds",
            "Time spent in Bastion per call, upstream time and retry waits excluded.",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        # The same calls under the OpenTelemetry GenAI semantic conventions' names, as an
        # OTel Prometheus exporter would write them (``gen_ai.client.operation.duration``
        # -> ``gen_ai_client_operation_duration_seconds``), for dashboards built on those
        # conventions. Label values are policy names (bounded): the operation is the
        # endpoint (chat, embeddings), the provider a policy provider ("none" when the
        # call reached none), the models policy models ("unknown" for names not in it);
        # ``error_type`` is a stable error code, "" for calls that succeeded.
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration).",
            [*GENAI_LABELS, "error_type"],
            buckets=GENAI_DURATION_BUCKETS,
            registry=registry,
        )
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used per operation (OpenTelemetry "
            "gen_ai.client.token.usage; gen_ai_token_type is input or output).",
            [*GENAI_LABELS, "gen_ai_token_type"],
            buckets=GENAI_TOKEN_BUCKETS,
            registry=registry,
        )
        self.genai_ttfc = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from the request to a stream's first chunk (OpenTelemetry "
            "gen_ai.client.operation.time_to_first_chunk); streamed calls only.",
            GENAI_LABELS,
            buckets=GENAI_DURATION_BUCKETS,
            registry=registry,
        )
        self.llm_budget_remaining = Gauge(
            "bastion_llm_budget_remaining_usd",
            "What is left of each team budget in its current window (USD).",
            ["team", "per"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )

        # Circuit breakers (bastion.gateway.breaker): 1 for the state each is in, 0 for
        # the others. ``deployment`` is the upstream model name from the policy.
        self.llm_deployment_state = Gauge(
            "bastion_llm_deployment_state",
            "Circuit breaker state of each deployment (provider x upstream model): 1 for "
            "the state it is in (closed, open, half_open), 0 for the others.",
            ["provider", "deployment", "state"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.llm_deployment_failures = Gauge(
            "bastion_llm_deployment_failures",
            "Failed calls in a row at each deployment (its breaker opens at the provider's "
            "breaker_failures).",
            ["provider", "deployment"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.llm_provider_state = Gauge(
            "bastion_llm_provider_state",
            "Circuit breaker state of each provider as a whole (opened by connection "
            "failures across several of its deployments): 1 for its state, 0 for the others.",
            ["provider", "state"],
            registry=registry,
            multiprocess_mode="livemax",
        )

        # Serving. ``model`` is a registered model that answered (``unknown`` for names
        # that did not), ``arm`` one of six route names, ``code`` a stable error code.
        self.predictions = Counter(
            "bastion_predictions",
            "Prediction requests by model, arm and outcome (ok, error).",
            ["model", "arm", "outcome"],
            registry=registry,
        )
        self.prediction_errors = Counter(
            "bastion_prediction_errors",
            "Prediction requests refused or failed, by model and error code.",
            ["model", "code"],
            registry=registry,
        )
        self.prediction_duration = Histogram(
            "bastion_prediction_duration_seconds",
            "Time to validate and score a prediction request (the model's part).",
            ["model", "arm"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=registry,
        )
        self.serving_version = Gauge(
            "bastion_serving_version",
            "The model version an alias serves in this process.",
            ["model", "alias"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.model_loads = Counter(
            "bastion_model_loads",
            "Model versions loaded, by model and outcome (ok, error).",
            ["model", "outcome"],
            registry=registry,
        )
        self.prediction_log_rows = Counter(
            "bastion_prediction_log_rows",
            "Prediction log rows by outcome (written, dropped: queue full or write failed).",
            ["outcome"],
            registry=registry,
        )

        # MCP tool calls (bastion.toolgate). ``server`` is a policy server name, ``tool``
        # a tool that server listed ("unknown" for any other name a caller sends).
        self.mcp_calls = Counter(
            "bastion_mcp_calls",
            "MCP requests through Bastion by server, tool, method and outcome (success, "
            "refused, failure, cancelled, error).",
            ["server", "tool", "method", "outcome"],
            registry=registry,
        )
        self.mcp_refusals = Counter(
            "bastion_mcp_refusals",
            "MCP requests refused, by server and error code.",
            ["server", "code"],
            registry=registry,
        )
        self.mcp_duration = Histogram(
            "bastion_mcp_call_duration_seconds",
            "Whole MCP requests through Bastion, by server and tool.",
            ["server", "tool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.mcp_overhead = Histogram(
            "bastion_mcp_overhead_seconds",
            "Time spent in Bastion per MCP request, the upstream server's time excluded.",
            ["server"],
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.mcp_definition_changes = Counter(
            "bastion_mcp_definition_changes",
            "Tool definitions found different from the approved (pinned) ones, by server.",
            ["server"],
            registry=registry,
        )

    def watch(self, name: str, collector: Collector) -> None:
        """Add ``collector``'s metrics to ``render`` (again under a name: replaced)."""
        self._collectors[name] = collector

    def render(self) -> bytes:
        if self.multiprocess_dir is not None:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                registry, path=str(self.multiprocess_dir)
            )
            body = generate_latest(registry)
        else:
            assert self._registry is not None
            body = generate_latest(self._registry)
        if self._collectors:
            extra = CollectorRegistry()
            for collector in self._collectors.values():
                extra.register(collector)
            body += generate_latest(extra)
        return body
