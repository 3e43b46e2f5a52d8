"""`bastion serve` as a real process on loopback, for tests that need the wire."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

BASTION = [sys.executable, "-m", "bastion.cli.main"]


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env |= {
        "BASTION_HOME": str(home),
        "BASTION_POLICY_RELOAD_INTERVAL_S": "60",
        "BASTION_LOG_FORMAT": "json",
        "BASTION_LOG_LEVEL": "DEBUG",
        **extra,
    }
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self.home, self.env, self.log = home, env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*BASTION, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*BASTION, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def admin_key(env: dict[str, str], *, user: str = "dev", team: str | None = None) -> str:
    """Migrate the home ``env`` names and make an admin key, in this process (a CLI
    subprocess pays an interpreter start and imports for each step)."""
    import pytest

    from bastion.auth.principal import SYSTEM
    from bastion.db import create_database, upgrade
    from bastion.runtime import open_runtime
    from bastion.settings import Settings

    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("BASTION_")]:
            mp.delenv(name)
        for name, value in env.items():
            if name.startswith("BASTION_"):
                mp.setenv(name, value)
        settings = Settings()
    db = create_database(settings.resolved_database_url)
    try:
        upgrade(db.engine)
    finally:
        db.dispose()
    runtime = open_runtime(settings, label="test-setup", write_policy=True)
    try:
        return str(runtime.keys.create(SYSTEM, user=user, role="admin", team=team).secret)
    finally:
        runtime.close()
