"""Fixtures shared by the whole suite.

``database_url`` runs a test on SQLite and, when reachable, on PostgreSQL (each test in
a schema of its own, dropped afterwards). Under ``CI=true`` an unreachable PostgreSQL
or Redis is an error, not a skip: CI always has them.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import settings as hypothesis_settings

from bastion.privacy._native import install_guard
from bastion.testing import FakeUpstream

# As the server and the CLI do at start: a detector edited since the build runs as source.
install_guard()

ROOT = Path(__file__).resolve().parents[1]
#: ``../shared/data`` beside the project; a worktree elsewhere names it in this variable.
SHARED_DATA = Path(os.environ.get("BASTION_TEST_SHARED_DATA") or ROOT.parent / "shared" / "data")
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "BASTION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


# CI replays the same examples every run (a landing must not turn red on a newly drawn
# one); developers' runs keep exploring. Failures found locally become @example cases.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if IN_CI:
    hypothesis_settings.load_profile("ci")


def unavailable(what: str) -> None:
    """Skip (on a developer's machine) or fail (in CI) a test that needs a service."""
    if IN_CI:
        pytest.fail(f"{what} (CI must have it)")
    pytest.skip(what)


@functools.cache
def postgres_problem() -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({type(exc).__name__}); set BASTION_TEST_POSTGRES_URL"
    return None


@functools.cache
def redis_problem() -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return (
            f"Redis not reachable at {REDIS_URL} ({type(exc).__name__}); set BASTION_TEST_REDIS_URL"
        )
    return None


@pytest.fixture
def redis_url() -> str:
    """The test Redis (skipped where unreachable, an error in CI)."""
    if problem := redis_problem():
        unavailable(problem)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of the test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the project; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data not available: {SHARED_DATA} is absent (it lives beside the project)"
        )
    return SHARED_DATA


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    import sqlalchemy as sa

    problem = postgres_problem()
    if problem:
        unavailable(problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def pgvector_server() -> Iterator[str]:
    """A private PostgreSQL with pgvector for the session (``bastion.testing.postgres``:
    pgserver's binaries, a unix socket in a temporary folder); skipped with the reason
    where it cannot start (an error in CI)."""
    from bastion.testing.postgres import PostgresUnavailable, PrivatePostgres

    try:
        server = PrivatePostgres().start()
    except PostgresUnavailable as exc:
        unavailable(f"no PostgreSQL with pgvector: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pgvector_url(pgvector_server: str) -> Iterator[str]:
    """A URL on the pgvector server whose search_path is a fresh schema (then ``public``,
    where the extension lives), dropped after the test."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pgvector_server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{pgvector_server}&options={quote(f'-csearch_path={schema},public')}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'bastion.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def settings(home: Path, database_url: str):  # type: ignore[no-untyped-def]
    from bastion.policy import write_starter_policy
    from bastion.settings import Settings

    write_starter_policy(home / "policy.yaml")
    return Settings(home=home, database_url=database_url, policy_reload_interval_s=0.1)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to the head once per session; each test that needs a
    migrated SQLite database gets a copy (the migrations themselves are tested on empty
    databases in tests/registry/test_migrations.py)."""
    from bastion.db import create_database, upgrade

    path = tmp_path_factory.mktemp("template") / "bastion.db"
    db = create_database(f"sqlite:///{path}")
    upgrade(db.engine)
    db.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def migrated(settings, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    from bastion.db import create_database, upgrade

    url = settings.resolved_database_url
    target = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if target is not None and not target.exists():
        template: Path = request.getfixturevalue("sqlite_template")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
    db = create_database(url)
    upgrade(db.engine)  # a copy of the template is at the head already: this only checks
    db.dispose()
    return settings


@pytest.fixture
def runtime(migrated):  # type: ignore[no-untyped-def]
    from bastion.runtime import open_runtime

    rt = open_runtime(migrated)
    yield rt
    rt.close()


@pytest.fixture
def app(migrated, runtime) -> FastAPI:  # type: ignore[no-untyped-def]
    from bastion.app import create_app

    return create_app(migrated, runtime=runtime)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as c:
        yield c
    await app.state.gateway.aclose()  # no lifespan over ASGI: close its upstream pools


@pytest.fixture
def key_for(runtime):  # type: ignore[no-untyped-def]
    """``key_for("analyst", team="risk")`` -> a fresh key's secret for that role."""
    from bastion.auth.principal import SYSTEM

    def make(role: str, *, user: str | None = None, team: str | None = None) -> str:
        return str(
            runtime.keys.create(SYSTEM, user=user or f"{role}-user", role=role, team=team).secret
        )

    return make


@pytest.fixture
def admin_headers(key_for) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {key_for('admin')}"}


# The fake LLM upstream (``bastion.testing.upstream``): one server per session on
# loopback; ``upstream`` hands it to a test with its state reset.
@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The session's fake upstream with no request log and fresh per-name state."""
    fake_upstream.reset(recover=False)
    return fake_upstream
