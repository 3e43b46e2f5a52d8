"""Reloading: a good file takes effect, a bad one is rejected and the old one stays."""

from __future__ import annotations

import os
import time

import pytest

from bastion.runtime import Runtime


def _bump_mtime(path) -> None:  # type: ignore[no-untyped-def]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _events(runtime: Runtime, action: str) -> list:  # type: ignore[type-arg]
    from bastion.audit import EventFilter

    return runtime.audit.page(EventFilter(action=action)).events


def test_good_change_takes_effect_and_is_recorded(runtime: Runtime) -> None:
    path = runtime.policy.path
    before = runtime.policy.current.digest
    path.write_text(
        path.read_text().replace("max_tokens_per_request: 4096", "max_tokens_per_request: 2048")
    )
    _bump_mtime(path)
    assert runtime.policy.file_changed()
    outcome = runtime.reload_policy("user:ops", "test")
    assert outcome.changed and outcome.error is None
    assert runtime.policy.policy.roles["analyst"].max_tokens_per_request == 2048
    [event] = _events(runtime, "policy.reload")
    assert event.outcome == "success"
    assert event.details["previous_digest"] == before
    assert event.details["digest"] == runtime.policy.current.digest


def test_bad_change_is_rejected_and_the_old_policy_stays(runtime: Runtime) -> None:
    path = runtime.policy.path
    good = runtime.policy.current
    path.write_text(path.read_text().replace("per: day}]", "per: dya}]"))
    _bump_mtime(path)
    outcome = runtime.reload_policy("system", "file-change")
    assert outcome.error is not None
    assert any("per" in issue.key for issue in outcome.error.issues)
    assert runtime.policy.current is good
    assert runtime.policy.policy.defaults.budgets[0].per == "day"
    assert not runtime.policy.file_changed(), "the same bad file must not be retried every tick"
    [event] = _events(runtime, "policy.reload")
    assert event.outcome == "failure"
    metrics = runtime.metrics.render().decode()
    assert 'bastion_policy_reloads_total{outcome="error"} 1.0' in metrics


@pytest.mark.anyio
async def test_running_server_picks_up_changes_by_itself(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    path = runtime.policy.path
    async with app.router.lifespan_context(app):
        path.write_text(
            path.read_text().replace("max_tokens_per_request: 4096", "max_tokens_per_request: 1000")
        )
        _bump_mtime(path)
        deadline = time.monotonic() + 10
        while runtime.policy.policy.roles["analyst"].max_tokens_per_request != 1000:
            assert time.monotonic() < deadline, "the watcher did not reload the policy"
            await asyncio.sleep(0.05)
