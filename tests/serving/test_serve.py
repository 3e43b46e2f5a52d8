"""The income model served by a real ``bastion serve`` process on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.principal import SYSTEM
from bastion.registry.service import ModelRegistry

from .conftest import NAME, Model, promote, records, register, set_policy
from .test_predict import ROW


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bastion_serve(runtime: Any, tmp: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env |= {
        "BASTION_HOME": str(runtime.settings.home),
        "BASTION_DATABASE_URL": runtime.settings.resolved_database_url,
        "BASTION_POLICY_RELOAD_INTERVAL_S": "0.2",
    }
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_bastion_serve_answers_as_mlflow_refuses_bad_rows_and_follows_the_alias(
    runtime: Any,
    registry: ModelRegistry,
    served_v1: int,
    income_v1: Model,
    income_v2: Model,
    tmp_path: Path,
) -> None:
    import mlflow.pyfunc

    set_policy(runtime, "serving", {"alias_ttl_s": 0.05})
    key = runtime.keys.create(SYSTEM, user="app", role="analyst").secret
    headers = {"Authorization": f"Bearer {key}"}
    rows = income_v1.trained.test.head(500)
    with bastion_serve(runtime, tmp_path) as url, httpx.Client(base_url=url, timeout=60) as http:
        r = http.post(f"/predict/{NAME}", json={"inputs": records(rows)}, headers=headers)
        assert r.status_code == 200, r.text
        expected = mlflow.pyfunc.load_model(str(income_v1.folder)).predict(rows).tolist()
        assert r.json()["predictions"] == expected
        assert r.headers["x-request-id"] == r.json()["request_id"]

        bad = http.post(f"/predict/{NAME}", json={"inputs": ROW | {"age": "old"}}, headers=headers)
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "inputs[0].age"

        v2 = register(registry, income_v2)
        promote(registry, NAME, v2)  # in another process: the server is not told
        deadline = time.monotonic() + 30
        while True:
            now = http.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=headers).json()
            if now["version"] == v2:
                break
            assert time.monotonic() < deadline, "the server never served the moved alias"
            time.sleep(0.1)
        r = http.post(f"/predict/{NAME}", json={"inputs": records(rows)}, headers=headers)
        assert r.json()["predictions"] == income_v2.trained.model.predict(rows).tolist()
