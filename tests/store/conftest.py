"""Fixtures for the metadata-store contract suite: one ``store`` fixture, run on both backends.

SQLite: a fresh database file under the test's tmp_path (in a folder that does not exist yet,
so the store's folder creation is exercised too).

PostgreSQL: one database per test session on the shared ``postgres_server`` (tests/conftest.py:
``HOMEPORT_TEST_PG_URL`` or a private throw-away server), emptied (``DROP SCHEMA public CASCADE``)
and migrated again before every test. The PostgreSQL cases never skip: when no server can be
had they fail, saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeport.store.database import Store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_url(postgres_server: Any) -> str:
    """URL of a PostgreSQL database this test session owns (dropped at the end of the session)."""
    url: str = postgres_server.create_database()
    return url


def _empty_pg_database(url: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
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
