"""``bastion serve`` as a user runs it: a real process on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

BASTION = [sys.executable, "-m", "bastion.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(home: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env |= {
        "BASTION_HOME": str(home),
        "BASTION_DATABASE_URL": database_url,
        "BASTION_POLICY_RELOAD_INTERVAL_S": "60",
    }
    return env


def bastion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASTION, *args], env=env, capture_output=True, text=True, timeout=120)


@contextmanager
def server(
    env: dict[str, str], tmp: Path, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path, Path]]:
    port = free_port()
    out, err = tmp / f"out-{port}.txt", tmp / f"err-{port}.txt"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [*BASTION, "serve", "--port", str(port), *args], env=env, stdout=o, stderr=e
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"server exited {proc.returncode}: {out.read_text()}\n{err.read_text()}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        yield proc, url, out, err
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_first_start_prints_a_working_admin_key_once(tmp_path: Path, database_url: str) -> None:
    env = env_for(tmp_path / "home", database_url)
    assert bastion(env, "db", "upgrade").returncode == 0
    with server(env, tmp_path) as (_proc, url, out, err):
        printed = out.read_text()
        match = re.search(r"Admin API key\s+(bst_\S+)", printed)
        assert match, printed
        key = match.group(1)
        who = httpx.get(f"{url}/api/whoami", headers={"Authorization": f"Bearer {key}"})
        assert who.status_code == 200 and who.json()["role"] == "admin"
        assert (tmp_path / "home" / "policy.yaml").exists()
        time.sleep(0.3)
        logs = [json.loads(line) for line in err.read_text().splitlines() if line.startswith("{")]
        requests = [entry for entry in logs if entry.get("message") == "request"]
        assert any(entry["path"] == "/api/whoami" and entry["request_id"] for entry in requests)
        assert key not in err.read_text()
    with server(env, tmp_path) as (_proc, url, out, _err):
        assert "bst_" not in out.read_text().split("Admin API key", 1)[1].splitlines()[0]
        assert (
            httpx.get(f"{url}/api/whoami", headers={"Authorization": f"Bearer {key}"}).status_code
            == 200
        )


def test_refuses_to_start_on_a_schema_that_is_behind(tmp_path: Path) -> None:
    env = env_for(tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'bastion.db'}")
    result = bastion(env, "serve", "--port", str(free_port()))
    assert result.returncode == 1
    assert "bastion db upgrade" in result.stderr
    current = bastion(env, "db", "current")
    assert current.returncode == 1 and "behind" in current.stdout


def test_sighup_reloads_the_policy_and_a_bad_file_keeps_the_old(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = env_for(home, f"sqlite:///{home / 'bastion.db'}")
    bastion(env, "db", "upgrade")
    with server(env, tmp_path) as (proc, url, out, err):
        key = re.search(r"Admin API key\s+(bst_\S+)", out.read_text()).group(1)  # type: ignore[union-attr]
        headers = {"Authorization": f"Bearer {key}"}

        def digest() -> str:
            return str(httpx.get(f"{url}/api/policy", headers=headers).json()["digest"])

        def wait_for(predicate) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + 10
            while not predicate():
                assert time.monotonic() < deadline
                time.sleep(0.1)

        first = digest()
        policy = home / "policy.yaml"
        policy.write_text(
            policy.read_text().replace(
                "max_tokens_per_request: 4096", "max_tokens_per_request: 1024"
            )
        )
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: digest() != first)
        second = digest()
        policy.write_text("version: 1\nroles: {guest: {models: [nope]}}\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "policy reload rejected" in err.read_text())
        assert digest() == second
        metrics = httpx.get(f"{url}/metrics").text
        assert 'bastion_policy_reloads_total{outcome="error"} 1.0' in metrics
        assert 'bastion_policy_reloads_total{outcome="success"} 1.0' in metrics


def test_workers_without_redis_are_refused(tmp_path: Path) -> None:
    """Per-worker counters would let N workers spend a budget N times."""
    home = tmp_path / "home"
    env = env_for(home, f"sqlite:///{home / 'bastion.db'}")
    done = bastion(env, "serve", "--workers", "2")
    assert done.returncode == 1
    assert "BASTION_REDIS_URL" in done.stderr + done.stdout


@pytest.mark.slow
@pytest.mark.redis
def test_metrics_add_up_across_worker_processes(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    home = tmp_path / "home"
    env = env_for(home, f"sqlite:///{home / 'bastion.db'}")
    env |= {"BASTION_REDIS_URL": redis_url, "BASTION_REDIS_PREFIX": redis_prefix}
    bastion(env, "db", "upgrade")
    with server(env, tmp_path, "--workers", "2") as (_proc, url, _out, _err):
        for _ in range(60):
            with httpx.Client() as c:  # a new connection each time, so both workers serve
                response = c.get(f"{url}/healthz")
                assert response.status_code == 200
        text = httpx.get(f"{url}/metrics").text
        served = re.search(
            r'bastion_http_requests_total\{method="GET",route="/healthz",status="2xx"\} (\S+)', text
        )
        assert served is not None, text[:2000]
        # /readyz polling happened too; /healthz was hit exactly 60 times across both workers.
        assert float(served.group(1)) == 60.0
        # each worker keeps its own counter file; both must have served
        assert len(list((home / "metrics").glob("counter_*.db"))) >= 2


def test_idle_connections_are_kept_for_the_keep_alive_setting(tmp_path: Path) -> None:
    """A pool in front of Bastion reuses idle connections: the server must not close them
    sooner than ``BASTION_KEEP_ALIVE_S`` (75 s by default, above a load balancer's 60 s;
    uvicorn's own 5 s made a pool's request meet a reset now and then)."""
    import http.client

    from bastion.settings import Settings

    assert Settings.model_fields["keep_alive_s"].default > 60
    home = tmp_path / "home"
    env = env_for(home, f"sqlite:///{home / 'bastion.db'}") | {"BASTION_KEEP_ALIVE_S": "2"}
    bastion(env, "db", "upgrade")
    with server(env, tmp_path) as (_proc, url, _out, _err):
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        try:

            def healthz() -> int:
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                return response.status

            assert healthz() == 200
            sock = conn.sock
            time.sleep(1.0)  # idle, within the setting: the same connection still serves
            assert healthz() == 200
            assert conn.sock is sock  # (http.client reconnects silently if it was closed)
            time.sleep(3.0)  # idle past it: the server has closed its end
            sock.settimeout(0.5)
            assert sock.recv(1) == b""
        finally:
            conn.close()
