"""What ``GET /api/gateway/health`` and ``bastion gateway health`` show: every deployment
the policy names, with its breaker's state, failures and next probe, and each
provider's own breaker; and the Prometheus gauges of the same states.

A deployment no call has reached yet is shown closed with no failures. The states are
this process's: each gateway process (a ``--workers`` worker, a replica) judges its
upstreams by the calls it made itself, as a client-side breaker does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bastion.gateway.breaker import STATES, BreakerView, CircuitBreaker, Health, State
from bastion.observability.metrics import Metrics
from bastion.policy.schema import Policy, ProviderConfig

LOCAL = ProviderConfig(kind="local")


@dataclass(frozen=True)
class DeploymentHealth:
    provider: str
    upstream_model: str
    credential: str | None  # the environment variable holding its key, never the key
    models: tuple[str, ...]  # the policy's models it serves
    breaker: BreakerView


@dataclass(frozen=True)
class ProviderHealth:
    provider: str
    breaker: BreakerView


@dataclass(frozen=True)
class HealthReport:
    at: float  # Unix time
    deployments: list[DeploymentHealth]
    providers: list[ProviderHealth]


def _closed(cfg: ProviderConfig) -> BreakerView:
    return CircuitBreaker(failures=cfg.breaker_failures, reset_s=cfg.breaker_reset_s).view()


def report(health: Health, policy: Policy) -> HealthReport:
    """Every deployment of the policy (and any other a call has reached), sorted."""
    served: dict[tuple[str, str, str], list[str]] = {}
    configs: dict[str, ProviderConfig] = {}
    for name, model in policy.models.items():
        cfg = policy.providers.get(model.provider) or LOCAL
        configs[model.provider] = cfg
        key = (model.provider, model.upstream_model or name, cfg.api_key_env or "")
        served.setdefault(key, []).append(name)
    deployments: dict[tuple[str, str, str], DeploymentHealth] = {}
    for (provider, upstream, credential), models in served.items():
        found = health.find(provider, upstream, credential)
        view = found.breaker.view() if found is not None else _closed(configs[provider])
        deployments[(provider, upstream, credential)] = DeploymentHealth(
            provider, upstream, credential or None, tuple(models), view
        )
    for deployment in health.deployments():
        k = deployment.key
        if (k.provider, k.upstream_model, k.credential) not in deployments:
            deployments[(k.provider, k.upstream_model, k.credential)] = DeploymentHealth(
                k.provider, k.upstream_model, k.credential or None, (), deployment.breaker.view()
            )
    seen = health.providers()
    providers = [
        ProviderHealth(name, seen[name].view() if name in seen else _closed(cfg))
        for name, cfg in sorted(configs.items())
    ]
    providers += [
        ProviderHealth(name, breaker.view())
        for name, breaker in sorted(seen.items())
        if name not in configs
    ]
    return HealthReport(time.time(), [deployments[k] for k in sorted(deployments)], providers)


def publish(metrics: Metrics, health_report: HealthReport) -> None:
    """Set the state gauges from a report (at scrape time: a breaker turns half-open by
    the clock, not by an event)."""
    for d in health_report.deployments:
        set_state(metrics, (d.provider, d.upstream_model), d.breaker.state)
        metrics.llm_deployment_failures.labels(d.provider, d.upstream_model).set(d.breaker.failures)
    for p in health_report.providers:
        set_state(metrics, (p.provider,), p.breaker.state)


def set_state(metrics: Metrics, labels: tuple[str, ...], state: State) -> None:
    """1 for the state a breaker is in, 0 for the others."""
    gauge = metrics.llm_deployment_state if len(labels) == 2 else metrics.llm_provider_state
    for each in STATES:
        gauge.labels(*labels, each).set(1.0 if each == state else 0.0)
