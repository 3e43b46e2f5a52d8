"""A private PostgreSQL with pgvector for tests and benchmarks, from the ``pgserver`` wheel.

    with PrivatePostgres() as server:
        url = server.url  # postgresql+psycopg://postgres@/postgres?host=/tmp/bastion-pg-…

PyPI's ``pgserver`` (a development dependency) ships PostgreSQL's binaries with
pgvector's ``vector`` extension, so the pgvector path is tested on machines whose
PostgreSQL lacks it, with nothing downloaded at run time. Only its binaries are used:
its own launcher adds an operating-system user and widens the permissions of every
folder above its data when run as root, which a test has no business doing. Here the
server lives in a fresh folder under the system's temporary directory, listens on a unix
socket there only (no TCP port), runs as an existing unprivileged user when the tests
run as root (PostgreSQL refuses root), is started and stopped by ``pg_ctl`` and leaves
nothing behind. The extension is created in ``public``; give each test a schema of its
own with ``search_path=<schema>,public``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

#: Users a server may run as when the caller is root, in order of preference.
UNPRIVILEGED = ("postgres", "nobody")


class PostgresUnavailable(RuntimeError):
    """The private server cannot start here; the message says why."""


def binaries() -> Path:
    """pgserver's ``bin`` folder (without importing pgserver, which touches the disk)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise PostgresUnavailable("pgserver is not installed (it is in the dev group: uv sync)")
    root = Path(spec.origin).parent / "pginstall"
    if not (root / "bin" / "pg_ctl").is_file():
        raise PostgresUnavailable(f"pgserver has no PostgreSQL binaries for this platform ({root})")
    if not (root / "share" / "postgresql" / "extension" / "vector.control").is_file():
        raise PostgresUnavailable("pgserver's PostgreSQL has no pgvector extension")
    return root / "bin"


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = binaries()
        self.root: Path | None = None
        self._run_as: dict[str, Any] = {}

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def url(self) -> str:
        """The ``postgres`` database, over the unix socket."""
        assert self.root is not None
        return f"postgresql+psycopg://postgres@/postgres?host={self.root}"

    def pid(self) -> int | None:
        """The postmaster's process id (first line of ``postmaster.pid``)."""
        if self.root is None:
            return None
        pidfile = self.data / "postmaster.pid"
        return int(pidfile.read_text().split()[0]) if pidfile.is_file() else None

    def start(self) -> PrivatePostgres:
        self.root = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        try:
            if os.geteuid() == 0:
                self._run_as = self._unprivileged()
                os.chown(self.root, self._run_as["user"], self._run_as["group"])
            self._pg(
                "initdb",
                "-D",
                str(self.data),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
            options = f"-c listen_addresses='' -k {self.root} -c fsync=off -c max_connections=200"
            self._pg(
                "pg_ctl",
                "-D",
                str(self.data),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "-l",
                str(self.root / "log"),
                "start",
            )
            self._create_extension()
        except (OSError, subprocess.SubprocessError, PostgresUnavailable) as exc:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            self.stop()
            why = f"the private PostgreSQL did not start: {exc}\n{tail}"
            raise PostgresUnavailable(why) from exc
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data / "postmaster.pid").is_file():
            with contextlib.suppress(subprocess.SubprocessError):  # already gone
                self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- parts ----------------------------------------------------------------------

    def _pg(self, program: str, *args: str) -> None:
        subprocess.run(  # noqa: S603 - our own arguments, the wheel's binaries
            [str(self.bin / program), *args],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=self.root,
            **self._run_as,
        )

    def _unprivileged(self) -> dict[str, Any]:
        for name in UNPRIVILEGED:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        raise PostgresUnavailable(
            f"running as root and none of the users {', '.join(UNPRIVILEGED)} exists "
            "(PostgreSQL refuses to run as root)"
        )

    def _create_extension(self) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"))
        except sa.exc.DBAPIError as exc:
            raise PostgresUnavailable(f"CREATE EXTENSION vector failed: {exc.orig}") from exc
        finally:
            engine.dispose()
