"""Fixtures for the metadata-store contract suite: one ``store`` fixture, run on both backends.

SQLite: a fresh database file under the test's tmp_path (in a folder that does not exist yet,
so the store's folder creation is exercised too).

PostgreSQL, one database per test session, emptied (``DROP SCHEMA public CASCADE``) and migrated
again before every test:

* If ``HOMEPORT_TEST_PG_URL`` is set (e.g. ``postgresql+psycopg://postgres:pw@127.0.0.1:5432/postgres``,
  a role allowed to CREATE DATABASE), a database ``homeport_test_<random>`` is created through it and
  dropped at the end of the session.
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

The PostgreSQL cases never skip: when no server can be had they fail, saying why.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeport.store.database import Store

BACKENDS = ["sqlite", "postgresql"]
_START_TIMEOUT_S = 60.0


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class _PrivateServer:
    root: Path
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
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
        ],
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
        port = _free_port()
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
                    "max_connections=100",
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
    deadline = time.monotonic() + _START_TIMEOUT_S
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


def _admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL database this test session owns."""
    server: _PrivateServer | None = None
    base = os.environ.get("HOMEPORT_TEST_PG_URL")
    if not base:
        server = _start_private_server()
        base = server.url
    name = f"homeport_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(base)
    try:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.SQLAlchemyError as exc:
            pytest.fail(f"Could not create a test database through {base!r}: {exc}", pytrace=False)
        yield sa.make_url(base).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
        if server is not None:
            server.stop()


def _empty_pg_database(url: str) -> None:
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty, unmigrated database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'homeport.db'}"
    url: str = request.getfixturevalue("pg_url")
    _empty_pg_database(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    s = Store(store_url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()
