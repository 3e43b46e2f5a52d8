"""``create_app(settings)``: wiring only.

Every service is built here (the gateway) or by the runtime it opens (database, policy,
ledger, keys, audit, and the model registry on first use), not at import; the lifespan
starts the policy watcher and the SIGHUP handler and closes them all on shutdown.

The guard that keeps a stale compiled detector from running is installed here, first,
before the routes bring in the privacy guard (:mod:`bastion.privacy._native`); the
package itself changes nothing in ``sys.meta_path`` when it is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from bastion import __version__
from bastion.observability import configure_logging
from bastion.privacy._native import install_guard
from bastion.runtime import Runtime, open_runtime, secret_key
from bastion.settings import Settings

log = logging.getLogger("bastion")


async def _watch_policy(runtime: Runtime, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            if runtime.policy.file_changed():
                await run_in_threadpool(runtime.reload_policy, "system", "file-change")
        except Exception:
            log.exception("policy watcher failed; it keeps watching")


async def _sweep_retention(runtime: Runtime, interval: float) -> None:
    """Apply the policy's retention on a schedule (each sweep is a ledger event)."""
    while True:
        await asyncio.sleep(interval)
        retention = runtime.policy.policy.retention
        if retention.content_days is None and retention.events_days is None:
            continue
        try:
            sweeper = runtime.retention()
            await run_in_threadpool(
                functools.partial(
                    sweeper.sweep,
                    content_days=retention.content_days,
                    events_days=retention.events_days,
                    actor="system",
                )
            )
        except Exception:
            log.exception("retention sweep failed; the next one will try again")


async def _refresh_usage(app: FastAPI, interval: float) -> None:
    """Fold new gateway events into the usage rollups on a schedule (every replica may:
    a batch another one folded first is not counted twice)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(app.state.usage.refresh)
        except Exception:
            log.exception("usage refresh failed; the next one will try again")


async def _alert_clocks(runtime: Runtime, interval: float) -> None:
    """Alert on legal clocks close to or past their deadline; each (clock, threshold)
    once, whichever replica gets there first (:func:`bastion.evidence.clocks.alert_clocks`)."""
    from bastion.db.base import utcnow
    from bastion.evidence.clocks import alert_clocks

    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(
                alert_clocks, runtime.db, runtime.ledger, runtime.policy.policy, utcnow()
            )
        except Exception:
            log.exception("clock check failed; the next one will try again")


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    install_guard()  # before anything below imports a compiled detector
    from bastion.api.errors import install_error_handlers
    from bastion.api.middleware import RequestContext
    from bastion.api.routes import (
        audit,
        deployments,
        documents,
        evidence,
        gateway,
        gateway_health,
        keys,
        mcp,
        models,
        ops,
        policy,
        rag,
        serving,
        subjects,
        usage,
    )
    from bastion.delivery.controller import RolloutController, run_controller
    from bastion.delivery.service import DeliveryService
    from bastion.documents.setup import build_documents
    from bastion.gateway.service import derive_key
    from bastion.gateway.setup import build_gateway
    from bastion.rag.setup import build_answers, load_prompts
    from bastion.serving.schedule import CheckScheduler, run_checks
    from bastion.toolgate.service import ToolGate
    from bastion.toolgate.sessions import McpSessions

    settings = settings or Settings()
    # The prompts first: a bad or changed one stops the start before anything is opened.
    prompts = load_prompts(settings.home)
    runtime = runtime or open_runtime(settings, write_policy=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(_watch_policy(runtime, settings.policy_reload_interval_s))
        sweeper = asyncio.create_task(
            _sweep_retention(runtime, settings.retention_sweep_interval_s)
        )
        refresher = (
            asyncio.create_task(_refresh_usage(app, settings.usage_refresh_interval_s))
            if settings.usage_refresh_interval_s > 0
            else None
        )
        clock_alerts = asyncio.create_task(_alert_clocks(runtime, settings.clock_check_interval_s))
        controller = asyncio.create_task(
            run_controller(
                app.state.rollout_controller, runtime.policy.policy.delivery.controller_interval_s
            )
        )
        checks = asyncio.create_task(run_checks(app.state.serving_checks))

        pending: set[asyncio.Task[object]] = set()

        def on_sighup() -> None:
            task = loop.create_task(run_in_threadpool(runtime.reload_policy, "system", "sighup"))
            pending.add(task)
            task.add_done_callback(pending.discard)

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        await run_in_threadpool(app.state.gateway.warm)
        # What startup built lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise stall requests for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            watcher.cancel()
            sweeper.cancel()
            clock_alerts.cancel()
            controller.cancel()
            if refresher is not None:
                refresher.cancel()
            checks.cancel()
            with contextlib.suppress(Exception):
                # the next replica need not wait for the lease to run out
                await run_in_threadpool(app.state.rollout_controller.release)
            await app.state.mcp_sessions.aclose()
            await app.state.toolgate.aclose()
            await app.state.gateway.aclose()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await run_in_threadpool(runtime.close)

    app = FastAPI(
        title="Bastion",
        version=__version__,
        description="Governance control plane for AI in production.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry hooks ask on every request whether a provider is
        # configured (~15 µs); Bastion's evidence is its ledger and Prometheus metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    # Opens nothing: upstream connections and Redis connect on first use.
    app.state.gateway = build_gateway(runtime)
    app.state.toolgate = ToolGate(
        runtime, app.state.gateway.counters, privacy_keys=app.state.gateway.privacy_keys
    )
    app.state.mcp_sessions = McpSessions(app.state.toolgate)
    # Documents and retrieval (embeddings go through this gateway, governed like any call).
    app.state.documents = build_documents(runtime, app.state.gateway)
    # Grounded answers and research over that retriever; the prompts are checked here.
    app.state.answers = build_answers(
        runtime, app.state.gateway, app.state.documents.retriever, prompts
    )
    # Progressive delivery's controller, run by the lifespan (one replica at a time acts);
    # serving asks the rollouts' traffic plan (``serving.setup``) which version answers.
    app.state.rollout_controller = RolloutController(
        DeliveryService(runtime.db, runtime.ledger, runtime.policy)
    )
    # Usage rollups for the dashboard and /api/usage; alerts read this gateway's breakers.
    app.state.usage = runtime.usage(health=app.state.gateway.health_report)
    # Drift and performance of the production models from the prediction log, on the
    # policy's serving.checks interval (one replica runs each check).
    app.state.serving_checks = CheckScheduler(runtime.db, runtime.ledger, runtime.policy)
    install_error_handlers(app)
    from bastion import web

    web.install(app)  # the dashboard, after the API's error handlers it wraps
    for module in (
        ops, keys, audit, policy, gateway, gateway_health, models, serving, evidence,
        documents, subjects, rag, deployments, mcp, usage,
    ):  # fmt: skip
        app.include_router(module.router)
    from bastion.monitoring.signals import CheckCollector

    runtime.metrics.watch("monitoring", CheckCollector(runtime.db))
    app.add_middleware(gateway.FastPath)  # inside RequestContext: added first
    app.add_middleware(
        RequestContext,
        metrics=runtime.metrics,
        max_body_bytes=settings.max_body_bytes,
        # Client request ids that are not kept are digested with a key of their own.
        id_key=derive_key(secret_key(settings), "bastion/request-id"),
    )
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and ``bastion serve`` workers."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
