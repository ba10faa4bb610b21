"""The metadata store: training jobs, hosting, transform jobs and tags in SQLite (WAL) or PostgreSQL.

``Store`` owns the SQLAlchemy engine and its connection pool, runs the Alembic migrations shipped
in ``migrations/``, and turns rows into the records of :mod:`homeport.store.records` and back.
It is safe to share between threads: every method checks a pooled connection out for one
transaction.

Every resource table is keyed by ``name_key`` (the lower-cased name: SageMaker names are unique
case-insensitively) and the records keep the client's spelling in ``name``; the generic
``_insert``/``_get``/``_update``/``_delete``/``_list`` helpers serve all of them, and the public
methods only name the table, the record class and the error wording.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from homeport.errors import AlreadyExistsError, StoreError
from homeport.store.listing import ListQuery, list_page
from homeport.store.records import (
    EndpointConfigRecord,
    EndpointRecord,
    ModelRecord,
    ResourceQuery,
    TrainingJobQuery,
    TrainingJobRecord,
    TransformJobRecord,
)
from homeport.store.schema import endpoint_configs, endpoints, models, training_jobs, transform_jobs
from homeport.store.schema import tags as tags_table

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_BUSY_TIMEOUT_MS = 30_000
# Execution option that makes the SQLite "begin" hook take the write lock up front.
_WRITE_OPTION = "homeport_write"
# Arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrate() calls.
_MIGRATE_LOCK_ID = 0x486F6D65706F7274 & 0x7FFFFFFFFFFFFFFF


class _Record(Protocol):
    """What the generic helpers need of a record: a dataclass with a ``name``."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    name: str


_R = TypeVar("_R", bound=_Record)


def _dump_json(value: Any) -> str:
    # PostgreSQL's JSON type rejects NaN/Infinity; refusing them on SQLite too keeps both
    # backends accepting exactly the same records.
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


@functools.cache
def _fields(cls: type[_Record]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _by_key(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table).where(table.c.name_key == sa.bindparam("name_key"))


def _record(cls: type[_R], row: sa.RowMapping) -> _R:
    return cls(**{f: row[f] for f in _fields(cls)})


def _row_values(rec: _Record) -> dict[str, Any]:
    values = {f: getattr(rec, f) for f in _fields(type(rec))}
    values["name_key"] = rec.name.lower()
    return values


def _execute_write(conn: sa.Connection, stmt: sa.Executable, noun: str) -> None:
    try:
        conn.execute(stmt)
    except (ValueError, TypeError) as exc:
        # psycopg serialises JSON parameters itself and lets the encoder's error through
        # unwrapped (SQLite's comes wrapped in StatementError): the same StoreError for both.
        raise StoreError(f"{noun} record cannot be stored: {exc}") from exc


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


class Store:
    """Training jobs, models, endpoint configurations, endpoints, transform jobs and tags behind one
    engine."""

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

    # -- any resource table --------------------------------------------------------------------

    def _insert(self, table: sa.Table, rec: _Record, noun: str, duplicate: str) -> None:
        """Insert ``rec``; AlreadyExistsError(duplicate) when its name is taken, in any case."""
        with self._transaction(write=True) as conn:
            try:
                _execute_write(conn, sa.insert(table).values(_row_values(rec)), noun)
            except sa.exc.IntegrityError as exc:
                if _is_unique_violation(exc):
                    raise AlreadyExistsError(duplicate) from None
                raise

    def _get(self, table: sa.Table, cls: type[_R], name: str) -> _R | None:
        with self._transaction() as conn:
            row = conn.execute(_by_key(table), {"name_key": name.lower()}).mappings().first()
        return None if row is None else _record(cls, row)

    def _update(
        self, table: sa.Table, cls: type[_R], name: str, mutate: Callable[[_R], None], noun: str
    ) -> _R:
        key = name.lower()
        with self._transaction(write=True) as conn:
            row = conn.execute(_by_key(table).with_for_update(), {"name_key": key}).mappings().first()
            if row is None:
                raise KeyError(name)
            rec = _record(cls, row)
            mutate(rec)
            if rec.name.lower() != key:
                raise ValueError(f"{noun} {name!r} cannot be renamed to {rec.name!r}")
            values = _row_values(rec)
            del values["name_key"]
            _execute_write(conn, sa.update(table).where(table.c.name_key == key).values(values), noun)
        return rec

    def _delete(self, table: sa.Table, name: str) -> bool:
        with self._transaction(write=True) as conn:
            result = conn.execute(sa.delete(table).where(table.c.name_key == name.lower()))
        return bool(result.rowcount)

    def _list(self, table: sa.Table, cls: type[_R], q: ListQuery) -> tuple[list[_R], str | None]:
        with self._transaction() as conn:
            rows, token = list_page(conn, table, q)
        return [_record(cls, r) for r in rows], token

    def _in_statuses(self, table: sa.Table, cls: type[_R], statuses: Sequence[str]) -> list[_R]:
        if not statuses:
            return []
        stmt = (
            sa.select(table)
            .where(table.c.status.in_(list(statuses)))
            .order_by(table.c.creation_time, table.c.name_key)
        )
        with self._transaction() as conn:
            return [_record(cls, r) for r in conn.execute(stmt).mappings()]

    # -- training jobs -------------------------------------------------------------------------

    def insert_training_job(self, rec: TrainingJobRecord) -> None:
        self._insert(
            training_jobs,
            rec,
            "Training job",
            "Training job names must be unique within an AWS account and region, and a training job "
            f"with this name already exists ({rec.arn})",
        )

    def get_training_job(self, name: str) -> TrainingJobRecord | None:
        return self._get(training_jobs, TrainingJobRecord, name)

    def update_training_job(
        self, name: str, mutate: Callable[[TrainingJobRecord], None]
    ) -> TrainingJobRecord:
        """Read-modify-write in one transaction; concurrent updaters of a job run one at a time.

        ``mutate`` runs while the row (SQLite: the database) is locked, so it must be quick and
        must not call the store. If it raises, nothing is written and the exception propagates.
        Raises KeyError(name) when the job does not exist, ValueError if ``mutate`` renames it.
        """
        return self._update(training_jobs, TrainingJobRecord, name, mutate, "Training job")

    def list_training_jobs(self, q: TrainingJobQuery) -> tuple[list[TrainingJobRecord], str | None]:
        """One page of jobs matching ``q`` and the token of the next page (None on the last).

        Pagination is by keyset (the last row's sort value and name), so pages neither repeat
        nor skip rows when jobs are created or deleted between requests.
        """
        return self._list(training_jobs, TrainingJobRecord, q)

    def training_jobs_in(self, statuses: Sequence[str]) -> list[TrainingJobRecord]:
        """Every job whose status is one of ``statuses``, oldest first."""
        return self._in_statuses(training_jobs, TrainingJobRecord, statuses)

    # -- models --------------------------------------------------------------------------------

    def insert_model(self, rec: ModelRecord) -> None:
        self._insert(models, rec, "Model", f'Cannot create already existing model "{rec.arn}".')

    def get_model(self, name: str) -> ModelRecord | None:
        return self._get(models, ModelRecord, name)

    def delete_model(self, name: str) -> bool:
        """Delete the model; False when there was none. Its tags are the caller's to delete."""
        return self._delete(models, name)

    def list_models(self, q: ResourceQuery) -> tuple[list[ModelRecord], str | None]:
        """One page of models (sort by Name or CreationTime) and the next page's token, if any."""
        return self._list(models, ModelRecord, q)

    # -- endpoint configurations ---------------------------------------------------------------

    def insert_endpoint_config(self, rec: EndpointConfigRecord) -> None:
        self._insert(
            endpoint_configs,
            rec,
            "Endpoint configuration",
            f'Cannot create already existing endpoint configuration "{rec.arn}".',
        )

    def get_endpoint_config(self, name: str) -> EndpointConfigRecord | None:
        return self._get(endpoint_configs, EndpointConfigRecord, name)

    def delete_endpoint_config(self, name: str) -> bool:
        """Delete the configuration (endpoints using it keep running); False when there was none."""
        return self._delete(endpoint_configs, name)

    def list_endpoint_configs(self, q: ResourceQuery) -> tuple[list[EndpointConfigRecord], str | None]:
        """One page of configurations (sort by Name or CreationTime) and the next page's token."""
        return self._list(endpoint_configs, EndpointConfigRecord, q)

    # -- endpoints -----------------------------------------------------------------------------

    def insert_endpoint(self, rec: EndpointRecord) -> None:
        self._insert(endpoints, rec, "Endpoint", f'Cannot create already existing endpoint "{rec.arn}".')

    def get_endpoint(self, name: str) -> EndpointRecord | None:
        return self._get(endpoints, EndpointRecord, name)

    def update_endpoint(self, name: str, mutate: Callable[[EndpointRecord], None]) -> EndpointRecord:
        """Read-modify-write in one transaction, as :meth:`update_training_job` (same rules)."""
        return self._update(endpoints, EndpointRecord, name, mutate, "Endpoint")

    def delete_endpoint(self, name: str) -> bool:
        """Delete the endpoint; False when there was none. Its tags are the caller's to delete."""
        return self._delete(endpoints, name)

    def list_endpoints(self, q: ResourceQuery) -> tuple[list[EndpointRecord], str | None]:
        """One page of endpoints (every filter; sort by Name, CreationTime or Status)."""
        return self._list(endpoints, EndpointRecord, q)

    def endpoints_in(self, statuses: Sequence[str]) -> list[EndpointRecord]:
        """Every endpoint whose status is one of ``statuses``, oldest first."""
        return self._in_statuses(endpoints, EndpointRecord, statuses)

    # -- transform jobs ------------------------------------------------------------------------

    def insert_transform_job(self, rec: TransformJobRecord) -> None:
        self._insert(
            transform_jobs,
            rec,
            "Transform job",
            "Transform job names must be unique within an AWS account and region, and a transform job "
            f"with this name already exists ({rec.arn})",
        )

    def get_transform_job(self, name: str) -> TransformJobRecord | None:
        return self._get(transform_jobs, TransformJobRecord, name)

    def update_transform_job(
        self, name: str, mutate: Callable[[TransformJobRecord], None]
    ) -> TransformJobRecord:
        """Read-modify-write in one transaction, as :meth:`update_training_job` (same rules)."""
        return self._update(transform_jobs, TransformJobRecord, name, mutate, "Transform job")

    def list_transform_jobs(self, q: TrainingJobQuery) -> tuple[list[TransformJobRecord], str | None]:
        """One page of transform jobs matching ``q`` (ListTransformJobs has ListTrainingJobs'
        filters and sorts) and the token of the next page (None on the last)."""
        return self._list(transform_jobs, TransformJobRecord, q)

    def transform_jobs_in(self, statuses: Sequence[str]) -> list[TransformJobRecord]:
        """Every transform job whose status is one of ``statuses``, oldest first."""
        return self._in_statuses(transform_jobs, TransformJobRecord, statuses)

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

    def delete_all_tags(self, arn: str) -> None:
        """Remove every tag of ``arn`` (its resource was deleted)."""
        with self._transaction(write=True) as conn:
            conn.execute(sa.delete(tags_table).where(tags_table.c.resource_arn == arn))
