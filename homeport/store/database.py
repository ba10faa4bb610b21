"""The metadata store: training jobs and tags in SQLite (WAL) or PostgreSQL, via SQLAlchemy Core.

``Store`` owns the engine and its connection pool, runs the Alembic migrations shipped in
``migrations/``, and turns rows into :class:`TrainingJobRecord` and back. It is safe to share
between threads: every method checks a pooled connection out for one transaction.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from homeport.errors import AlreadyExistsError, StoreError
from homeport.store.records import TrainingJobQuery, TrainingJobRecord
from homeport.store.schema import tags as tags_table
from homeport.store.schema import training_jobs

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes the SQLite "begin" hook take the write lock up front.
_WRITE_OPTION = "homeport_write"
# Arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrate() calls.
_MIGRATE_LOCK_ID = 0x486F6D65706F7274 & 0x7FFFFFFFFFFFFFFF
_INVALID_TOKEN = "Invalid pagination token"

_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainingJobRecord))
_SORT_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "Name": training_jobs.c.name_key,
    "CreationTime": training_jobs.c.creation_time,
    "Status": training_jobs.c.status,
}
_SORT_ORDERS = ("Ascending", "Descending")

_GET_JOB = sa.select(training_jobs).where(training_jobs.c.name_key == sa.bindparam("name_key"))


def _dump_json(value: Any) -> str:
    # PostgreSQL's JSON type rejects NaN/Infinity; refusing them on SQLite too keeps both
    # backends accepting exactly the same records.
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _record(row: sa.RowMapping) -> TrainingJobRecord:
    return TrainingJobRecord(**{f: row[f] for f in _FIELDS})


def _row_values(rec: TrainingJobRecord) -> dict[str, Any]:
    values = {f: getattr(rec, f) for f in _FIELDS}
    values["name_key"] = rec.name.lower()
    return values


def _execute_write(conn: sa.Connection, stmt: sa.Executable) -> None:
    try:
        conn.execute(stmt)
    except (ValueError, TypeError) as exc:
        # psycopg serialises JSON parameters itself and lets the encoder's error through
        # unwrapped (SQLite's comes wrapped in StatementError): the same StoreError for both.
        raise StoreError(f"Training job record cannot be stored: {exc}") from exc


def _is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    code = getattr(orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE)


def _on_sqlite_connect(dbapi_connection: Any, _connection_record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, decides when a transaction begins (see _on_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: sa.Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for the write lock in WAL
    # mode (it fails with SQLITE_BUSY at once); writers take the lock first and queue instead.
    if conn.get_execution_options().get(_WRITE_OPTION, False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def encode_token(sort_by: str, sort_order: str, key: list[Any]) -> str:
    payload = json.dumps({"s": sort_by, "o": sort_order, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode("ascii")


def decode_token(token: str, sort_by: str, sort_order: str) -> list[Any]:
    """The keyset a token resumes after; ValueError unless it came from the same sort."""
    try:
        payload = json.loads(base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ValueError(_INVALID_TOKEN) from exc
    if not isinstance(payload, dict) or payload.get("s") != sort_by or payload.get("o") != sort_order:
        raise ValueError(_INVALID_TOKEN)
    key = payload.get("k")
    if sort_by == "Name":
        valid = isinstance(key, list) and len(key) == 1 and isinstance(key[0], str)
    elif sort_by == "CreationTime":
        valid = (
            isinstance(key, list)
            and len(key) == 2
            and isinstance(key[0], int | float)
            and not isinstance(key[0], bool)
            and isinstance(key[1], str)
        )
    else:
        valid = isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)
    if not valid:
        raise ValueError(_INVALID_TOKEN)
    assert isinstance(key, list)
    if sort_by == "CreationTime":
        try:
            key[0] = float(key[0])  # an int as big as 10**400 is no creation time
        except OverflowError as exc:
            raise ValueError(_INVALID_TOKEN) from exc
    return key


class Store:
    """Training-job records and resource tags behind one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self._url = sa.make_url(url)
        if self._url.drivername == "postgresql":
            # A bare libpq-style URL would pick psycopg2; Homeport ships psycopg 3.
            self._url = self._url.set(drivername="postgresql+psycopg")
        self.dialect = self._url.get_backend_name()
        if self.dialect == "sqlite":
            self._engine = self._sqlite_engine()
        elif self.dialect == "postgresql":
            self._engine = sa.create_engine(
                self._url,
                json_serializer=_dump_json,
                pool_size=8,
                max_overflow=16,
                # A restarted server leaves dead pooled connections; one round trip per
                # checkout is cheaper than a failed request.
                pool_pre_ping=True,
            )
        else:
            raise StoreError(f"Unsupported database URL scheme: {self._url.drivername}")

    def _sqlite_engine(self) -> sa.Engine:
        database = self._url.database or ""
        in_memory = database in ("", ":memory:") or "mode=memory" in database
        if not in_memory and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        pool: dict[str, Any] = (
            # In memory, each connection would have its own database: share one connection,
            # which makes such a store single-threaded (meant for quick tests only).
            {"poolclass": sa.pool.StaticPool}
            if in_memory
            else {"poolclass": sa.pool.QueuePool, "pool_size": 8, "max_overflow": 16}
        )
        engine = sa.create_engine(
            self._url,
            json_serializer=_dump_json,
            connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
            **pool,
        )
        sa.event.listen(engine, "connect", _on_sqlite_connect)
        sa.event.listen(engine, "begin", _on_sqlite_begin)
        return engine

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def __repr__(self) -> str:
        return f"Store({self._url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sa.Connection]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{_WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"Metadata store failure: {exc}") from exc

    # -- schema --------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration; a no-op when it is already there."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        # Config values go through configparser interpolation: a literal % must be doubled.
        url = self._url.render_as_string(hide_password=False).replace("%", "%%")
        config.set_main_option("sqlalchemy.url", url)
        try:
            with self._transaction(write=True) as conn:
                if self.dialect == "postgresql":
                    # Two servers starting together must not both create the tables.
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATE_LOCK_ID)))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except CommandError as exc:
            raise StoreError(f"Metadata store migration failed: {exc}") from exc

    # -- training jobs -------------------------------------------------------------------------

    def insert_training_job(self, rec: TrainingJobRecord) -> None:
        with self._transaction(write=True) as conn:
            try:
                _execute_write(conn, sa.insert(training_jobs).values(_row_values(rec)))
            except sa.exc.IntegrityError as exc:
                if _is_unique_violation(exc):
                    raise AlreadyExistsError(
                        "Training job names must be unique within an AWS account and region, and a "
                        f"training job with this name already exists ({rec.arn})"
                    ) from None
                raise

    def get_training_job(self, name: str) -> TrainingJobRecord | None:
        with self._transaction() as conn:
            row = conn.execute(_GET_JOB, {"name_key": name.lower()}).mappings().first()
        return None if row is None else _record(row)

    def update_training_job(
        self, name: str, mutate: Callable[[TrainingJobRecord], None]
    ) -> TrainingJobRecord:
        """Read-modify-write in one transaction; concurrent updaters of a job run one at a time.

        ``mutate`` runs while the row (SQLite: the database) is locked, so it must be quick and
        must not call the store. If it raises, nothing is written and the exception propagates.
        Raises KeyError(name) when the job does not exist.
        """
        key = name.lower()
        with self._transaction(write=True) as conn:
            row = conn.execute(_GET_JOB.with_for_update(), {"name_key": key}).mappings().first()
            if row is None:
                raise KeyError(name)
            rec = _record(row)
            mutate(rec)
            if rec.name.lower() != key:
                raise ValueError(f"update_training_job cannot rename {name!r} to {rec.name!r}")
            values = _row_values(rec)
            del values["name_key"]
            where = training_jobs.c.name_key == key
            _execute_write(conn, sa.update(training_jobs).where(where).values(values))
        return rec

    def list_training_jobs(self, q: TrainingJobQuery) -> tuple[list[TrainingJobRecord], str | None]:
        """One page of jobs matching ``q`` and the token of the next page (None on the last).

        Pagination is by keyset (the last row's sort value and name), so pages neither repeat
        nor skip rows when jobs are created or deleted between requests.
        """
        column = _SORT_COLUMNS.get(q.sort_by)
        if column is None:
            raise ValueError(f"Unknown sort_by: {q.sort_by}")
        if q.sort_order not in _SORT_ORDERS:
            raise ValueError(f"Unknown sort_order: {q.sort_order}")
        if q.max_results < 1:
            raise ValueError("max_results must be at least 1")
        tj = training_jobs
        keyset = [column] if column is tj.c.name_key else [column, tj.c.name_key]
        descending = q.sort_order == "Descending"

        conditions: list[sa.ColumnElement[bool]] = []
        if q.name_contains:
            conditions.append(tj.c.name_key.contains(q.name_contains.lower(), autoescape=True))
        if q.status_equals is not None:
            conditions.append(tj.c.status == q.status_equals)
        bounds = (
            (tj.c.creation_time, q.creation_time_after, q.creation_time_before),
            (tj.c.last_modified_time, q.last_modified_time_after, q.last_modified_time_before),
        )
        for col, after, before in bounds:
            if after is not None:
                conditions.append(col > after)
            if before is not None:
                conditions.append(col < before)
        if q.next_token is not None:
            resume = decode_token(q.next_token, q.sort_by, q.sort_order)
            left = sa.tuple_(*keyset) if len(keyset) > 1 else keyset[0]
            right = sa.tuple_(*[sa.literal(v) for v in resume]) if len(keyset) > 1 else resume[0]
            conditions.append(left < right if descending else left > right)

        order = [c.desc() if descending else c.asc() for c in keyset]
        stmt = sa.select(tj).where(*conditions).order_by(*order).limit(q.max_results + 1)
        with self._transaction() as conn:
            rows = conn.execute(stmt).mappings().all()
        records = [_record(r) for r in rows[: q.max_results]]
        if len(rows) <= q.max_results:
            return records, None
        last = rows[q.max_results - 1]
        return records, encode_token(q.sort_by, q.sort_order, [last[c.name] for c in keyset])

    def training_jobs_in(self, statuses: Sequence[str]) -> list[TrainingJobRecord]:
        """Every job whose status is one of ``statuses``, oldest first."""
        if not statuses:
            return []
        tj = training_jobs
        stmt = (
            sa.select(tj).where(tj.c.status.in_(list(statuses))).order_by(tj.c.creation_time, tj.c.name_key)
        )
        with self._transaction() as conn:
            return [_record(r) for r in conn.execute(stmt).mappings()]

    # -- tags ----------------------------------------------------------------------------------

    def add_tags(self, arn: str, tags: Sequence[tuple[str, str]]) -> None:
        """Set tags on ``arn``; an existing key gets the new value (the last one given wins)."""
        # Deduplicated first: PostgreSQL refuses to upsert one key twice in a statement.
        latest = dict(tags)
        if not latest:
            return
        insert = (
            sqlite_dialect.insert(tags_table) if self.dialect == "sqlite" else pg_dialect.insert(tags_table)
        )
        stmt = insert.on_conflict_do_update(
            index_elements=[tags_table.c.resource_arn, tags_table.c.key],
            set_={"value": insert.excluded.value},
        )
        rows = [{"resource_arn": arn, "key": k, "value": v} for k, v in latest.items()]
        with self._transaction(write=True) as conn:
            conn.execute(stmt, rows)

    def list_tags(self, arn: str) -> list[tuple[str, str]]:
        """The tags of ``arn`` sorted by key (by code point, the same on both backends)."""
        stmt = sa.select(tags_table.c.key, tags_table.c.value).where(tags_table.c.resource_arn == arn)
        with self._transaction() as conn:
            pairs = [(str(k), str(v)) for k, v in conn.execute(stmt)]
        return sorted(pairs)

    def delete_tags(self, arn: str, keys: Sequence[str]) -> None:
        """Remove the given keys from ``arn``; keys it does not have are ignored."""
        if not keys:
            return
        stmt = sa.delete(tags_table).where(tags_table.c.resource_arn == arn, tags_table.c.key.in_(list(keys)))
        with self._transaction(write=True) as conn:
            conn.execute(stmt)

    def count_tags(self, arn: str) -> int:
        stmt = sa.select(sa.func.count()).select_from(tags_table).where(tags_table.c.resource_arn == arn)
        with self._transaction() as conn:
            return int(conn.execute(stmt).scalar_one())
