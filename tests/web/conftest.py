"""The dashboard's browser harness: a real ``bastion serve`` and Debian's Chromium.

- ``server`` (session): ``bastion db upgrade`` + ``bastion demo seed`` in a temporary
  home, then ``bastion serve`` on a free loopback port; ``server.keys`` holds the demo
  keys by role (``admin`` ada, ``analyst`` ana, ``guest`` gus, ``auditor`` ida), ``server.url`` its root.
  A few gateway calls (``local`` model) are made so the ledger has traffic to show.
- ``browser`` (session): Chromium from ``/usr/bin/chromium`` through Playwright, never
  a downloaded browser (``make browser`` installs the Debian package).
- ``page_as(role)``: a fresh signed-in page; every console error, page error, failed
  request and failed sub-resource is collected and asserted empty at teardown.
  ``open_page()`` gives a page that is not signed in (same checks).
- ``shoot(page, name)`` writes ``tests/artifacts/<name>.png`` (git-ignored).

Browser tests carry ``@pytest.mark.browser``. Without ``/usr/bin/chromium`` they skip
with the reason on a developer's machine and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = Path("/usr/bin/chromium")
BASTION = Path(sys.executable).parent / "bastion"
ARTIFACTS = ROOT / "tests" / "artifacts"
#: The machine's network is closed: nothing in Chromium may reach out.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOAD_FAILED = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
DEMO_KEY = re.compile(r"demo key for (\w+) \((\w+)\): (bst_\S+)")


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium package"
    if IN_CI:
        pytest.fail(f"{reason} (CI must have it)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    keys: dict[str, str]
    env: dict[str, str]
    log: Path

    def cli(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(BASTION), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def api(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[role]}"}, timeout=60
        )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bastion serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"bastion serve not ready in 120 s: {log.read_text()[-3000:]}")


def _traffic(server: Server) -> None:
    """Calls through the gateway, so the Gateway and Audit pages have rows to show."""
    with server.api("analyst") as client:
        for i in range(4):
            response = client.post(
                "/v1/chat/completions",
                json={
                    "model": "local",
                    "messages": [{"role": "user", "content": f"Summarise call {i}, please."}],
                },
            )
            assert response.status_code == 200, response.text
        refused = client.post(
            "/v1/chat/completions",
            json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert refused.status_code >= 400


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ui-home")
    port = free_port()
    env = {
        **os.environ,
        "BASTION_HOME": str(home),
        "BASTION_LOG_LEVEL": "WARNING",
        "BASTION_POLICY_RELOAD_INTERVAL_S": "0.5",
    }
    env.pop("BASTION_DATABASE_URL", None)
    log = home / "serve.log"
    server = Server(f"http://127.0.0.1:{port}", home, {}, env, log)
    server.cli("db", "upgrade")
    seeded = server.cli("demo", "seed", timeout=600)
    for _user, role, key in DEMO_KEY.findall(seeded):
        server.keys[role] = key
    assert set(server.keys) >= {"admin", "analyst", "guest", "auditor"}, seeded
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(BASTION),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(server.url, proc, log)
        _traffic(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A Chromium per test. Playwright's sync API leaves its event loop marked running
    on this thread while it is open, so an anyio test run while a longer-lived browser
    is open would fail ("another loop is running"): open and close it within the test."""
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page and what went wrong on it (asserted empty when the test ends)."""

    page: Any
    problems: list[str] = field(default_factory=list)

    #: Document answers a test expects (a guest's 403 page): not counted as failures.
    expected_statuses: set[int] = field(default_factory=set)
    #: Paths a test downloads: Chromium reports the navigation a download ends as aborted.
    downloads: set[str] = field(default_factory=set)


_FAILED_LOAD = re.compile(
    r"Failed to load resource: the server responded with a status of (\d+) .*"
)


def _watch(context: Any) -> Watched:
    page = context.new_page()
    watched = Watched(page)

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        status = LOAD_FAILED.match(msg.text)
        if status and int(status.group(1)) in watched.expected_statuses:
            return  # Chromium logs the expected page's status too (a guest's 403)
        watched.problems.append(f"console error: {msg.text}")

    def on_response(response: Any) -> None:
        status = response.status
        if status < 400:
            return
        if response.request.resource_type == "document" and status in watched.expected_statuses:
            return
        watched.problems.append(f"HTTP {status}: {response.request.method} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.problems.append(f"page error: {exc}"))

    def on_failed(request: Any) -> None:
        path = urlsplit(request.url).path
        # A download ends its request; the favicon Chromium fetches on its own is
        # aborted when the test moves on first. Neither is the server failing.
        if request.failure == "net::ERR_ABORTED" and (
            path in watched.downloads or path == "/ui/static/favicon.svg"
        ):
            return
        watched.problems.append(f"request failed: {request.url} ({request.failure})")

    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    return watched


def assert_forbidden(watched: Watched, pages: Sequence[tuple[str, str]]) -> None:
    """Each ``(path, permission)`` answers the 403 page naming that permission, with no
    stack trace (the 403s are expected, so not counted as the page's problems)."""
    watched.expected_statuses.add(403)
    page = watched.page
    for path, permission in pages:
        response = page.goto(path)
        page.wait_for_load_state("networkidle")  # the favicon too, before moving on
        assert response is not None and response.status == 403, path
        assert page.get_by_test_id("missing-permission").inner_text() == permission
        assert "Traceback" not in page.content()


def sign_in(watched: Watched, server: Server, role: str) -> None:
    page = watched.page
    page.goto(f"{server.url}/ui/login")
    page.fill("#api_key", server.keys[role])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui(/.*)?$"))


@pytest.fixture
def open_page(browser: Any, server: Server) -> Iterator[Callable[[], Watched]]:
    contexts: list[Any] = []
    pages: list[Watched] = []

    def make() -> Watched:
        context = browser.new_context(base_url=server.url)
        context.set_default_timeout(30_000)
        contexts.append(context)
        watched = _watch(context)
        pages.append(watched)
        return watched

    yield make
    problems = [p for w in pages for p in w.problems]
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def page_as(open_page: Callable[[], Watched], server: Server) -> Callable[[str], Watched]:
    def make(role: str) -> Watched:
        watched = open_page()
        sign_in(watched, server, role)
        return watched

    return make


@pytest.fixture
def shoot() -> Callable[[Any, str], Path]:
    def save(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
