"""Session-wide test servers shared by tests/store, tests/storage and tests/e2e.

``postgres_server``: a PostgreSQL server this session may create databases on.

* If ``HOMEPORT_TEST_PG_URL`` is set (e.g. ``postgresql+psycopg://postgres:pw@127.0.0.1:5432/postgres``,
  a role allowed to CREATE DATABASE), that server is used.
* Otherwise the session starts a private throw-away server, the same steps as in a shell::

      d=$(mktemp -d /tmp/homeport-pg-XXXXXX); chown postgres: "$d"      # chown only when root
      runuser -u postgres -- initdb -D "$d/data" -U postgres -A trust --no-locale -E UTF8
      runuser -u postgres -- postgres -D "$d/data" -p <free port> -k "$d" \\
          -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off

  and stops it at the end by signalling that postgres process (SIGINT: fast shutdown), then
  deletes the folder. The binaries come from ``$HOMEPORT_PG_BINDIR``, else ``initdb`` on PATH,
  else the newest ``/usr/lib/postgresql/*/bin`` (Debian: ``apt-get install -y postgresql``).
  PostgreSQL refuses to run as root, so as root the server runs as the existing ``postgres``
  user (created by the Debian package) or else ``nobody``; no user is ever created.

Either way ``postgres_server.create_database()`` makes a new database ``homeport_test_<random>``
and returns its ``postgresql+psycopg://`` URL; every database made so is dropped at the end of
the session. ``pg_database_url`` is that, one fresh database per test.

``moto_endpoint``: the URL of a real moto S3 server subprocess on 127.0.0.1, started on first
use, shared by the session and stopped by PID; ``s3_client`` is a boto3 client for it with dummy
credentials (the developer's real AWS configuration never reaches the tests). The session never
ends, so use fresh bucket names.

Nothing here skips: when a server cannot be had, the tests that need it fail, saying why.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

_PG_START_TIMEOUT_S = 60.0
_MOTO_START_TIMEOUT_S = 60.0

MOTO_REGION = "us-east-1"
# Dummy credentials: moto accepts any, and passing them explicitly keeps the developer's
# real AWS configuration out of the tests.
MOTO_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_bindir() -> Path:
    env = os.environ.get("HOMEPORT_PG_BINDIR")
    found = shutil.which("initdb")
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if env:
        bindir: Path | None = Path(env)
    elif found:
        bindir = Path(found).resolve().parent
    else:
        bindir = candidates[-1].parent if candidates else None
    if bindir is None or not all((bindir / tool).is_file() for tool in ("initdb", "postgres")):
        pytest.fail(
            f"PostgreSQL server binaries (initdb, postgres) not found (looked in "
            f"{bindir or 'HOMEPORT_PG_BINDIR, PATH and /usr/lib/postgresql/*/bin'}). Install them "
            "(Debian: apt-get install -y postgresql), point HOMEPORT_PG_BINDIR at them, or set "
            "HOMEPORT_TEST_PG_URL to a server the tests may use.",
            pytrace=False,
        )
    return bindir


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("Running as root and neither a 'postgres' nor a 'nobody' user exists.", pytrace=False)


@dataclass
class _PrivateServer:
    root: Path
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: disconnects clients
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _start_private_server() -> _PrivateServer:
    bindir = _pg_bindir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="homeport-pg-"))
    as_user: dict[str, Any] = {}
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    data, log = root / "data", root / "postgres.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(root)}
    initdb = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-locale",
            "-E",
            "UTF8",
        ],  # fmt: skip
        capture_output=True,
        env=env,
        cwd=root,
        **as_user,
    )
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed:\n{initdb.stdout.decode()}\n{initdb.stderr.decode()}", pytrace=False)

    failures: list[str] = []
    for _attempt in range(3):  # the free port can be taken between probing and binding it
        port = free_port()
        with open(log, "ab") as log_file:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(root),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    # A throw-away cluster: durability only costs test time.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],  # fmt: skip
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=root,
                **as_user,
            )
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        server = _PrivateServer(root=root, process=process, url=url)
        if _wait_ready(server):
            return server
        failures.append(f"port {port}: exit code {process.poll()}\n{_tail(log)}")
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    shutil.rmtree(root, ignore_errors=True)
    pytest.fail("Could not start a private PostgreSQL server:\n" + "\n".join(failures), pytrace=False)


def _wait_ready(server: _PrivateServer) -> bool:
    engine = sa.create_engine(server.url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + _PG_START_TIMEOUT_S
    try:
        while time.monotonic() < deadline and server.process.poll() is None:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return True
            except sa.exc.OperationalError:
                time.sleep(0.1)
        return False
    finally:
        engine.dispose()


def admin_engine(url: str) -> sa.Engine:
    """An AUTOCOMMIT engine without a pool (CREATE/DROP DATABASE cannot run in a transaction)."""
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _with_psycopg(url: str) -> str:
    """The URL with SQLAlchemy's psycopg (3) driver, the one Homeport installs."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@dataclass
class PostgresServer:
    """A PostgreSQL server the session may create databases on."""

    admin_url: str  # ``postgresql+psycopg://...``, a role allowed to CREATE DATABASE
    databases: list[str] = field(default_factory=list)

    def create_database(self) -> str:
        """Create an empty database ``homeport_test_<random>``; its URL (dropped at session end)."""
        name = f"homeport_test_{uuid.uuid4().hex[:12]}"
        engine = admin_engine(self.admin_url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.SQLAlchemyError as exc:
            pytest.fail(f"Could not create a test database through {self.admin_url!r}: {exc}", pytrace=False)
        finally:
            engine.dispose()
        self.databases.append(name)
        return sa.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_databases(self) -> None:
        engine = admin_engine(self.admin_url)
        try:
            with engine.connect() as conn:
                while self.databases:
                    name = self.databases.pop()
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (HOMEPORT_TEST_PG_URL, else a private one started here)."""
    private: _PrivateServer | None = None
    base = os.environ.get("HOMEPORT_TEST_PG_URL")
    if not base:
        private = _start_private_server()
        base = private.url
    server = PostgresServer(admin_url=_with_psycopg(base))
    try:
        yield server
        server.drop_databases()
    finally:
        if private is not None:
            private.stop()


@pytest.fixture
def pg_database_url(postgres_server: PostgresServer) -> str:
    """URL of a new, empty PostgreSQL database for this test."""
    return postgres_server.create_database()


# -- moto (S3) -------------------------------------------------------------------------------


def _moto_server_command() -> str | None:
    beside_python = Path(sys.executable).with_name("moto_server")
    return str(beside_python) if beside_python.exists() else shutil.which("moto_server")


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server subprocess on 127.0.0.1, shared by the whole session, stopped by PID."""
    command = _moto_server_command()
    if command is None:
        pytest.fail(
            "moto_server is not installed (pip install 'moto[server]'): the S3 backend cannot be tested",
            pytrace=False,
        )
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    failures: list[str] = []
    for _attempt in range(3):  # the free port can be taken between probing and binding it
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
        try:
            if _wait_moto(proc, endpoint):
                yield endpoint
                return
            failures.append(f"{endpoint}: exit code {proc.poll()}\n{_tail(log_path)}")
        finally:
            _stop_process(proc)
    pytest.fail("Could not start moto_server:\n" + "\n".join(failures), pytrace=False)


def _wait_moto(proc: subprocess.Popen[bytes], endpoint: str) -> bool:
    deadline = time.monotonic() + _MOTO_START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means it is serving
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def s3_client(moto_endpoint: str) -> Any:
    """A boto3 S3 client on the moto server (path-style addressing, dummy credentials)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session(region_name=MOTO_REGION, **MOTO_CREDENTIALS).client(
        "s3", endpoint_url=moto_endpoint, config=Config(s3={"addressing_style": "path"})
    )
