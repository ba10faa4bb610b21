"""Contract suite for the store's training-job methods, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from homeport.errors import AlreadyExistsError, StoreError
from homeport.store.database import MIGRATIONS_DIR, Store
from homeport.store.records import TrainingJobQuery, TrainingJobRecord
from homeport.store.schema import metadata

STATUSES = ["InProgress", "Completed", "Failed", "Stopping", "Stopped"]


def job(name: str, **overrides: Any) -> TrainingJobRecord:
    values: dict[str, Any] = {
        "name": name,
        "arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name.lower()}",
        "status": "InProgress",
        "secondary_status": "Starting",
        "creation_time": 1_700_000_000.0,
        "last_modified_time": 1_700_000_000.0,
        "spec": {"TrainingJobName": name},
    }
    values.update(overrides)
    return TrainingJobRecord(**values)


def names(records: list[TrainingJobRecord]) -> list[str]:
    return [r.name for r in records]


def list_all(store: Store, **query: Any) -> list[TrainingJobRecord]:
    records, token = store.list_training_jobs(TrainingJobQuery(max_results=100, **query))
    assert token is None
    return records


# -- insert / get --------------------------------------------------------------------------------


def test_insert_then_get_returns_every_field(store: Store) -> None:
    rec = job(
        "Full-Job",
        status="Failed",
        secondary_status="Failed",
        creation_time=1_700_000_001.25,
        last_modified_time=1_700_000_123.5,
        spec={"AlgorithmSpecification": {"TrainingImage": "img:1", "TrainingInputMode": "File"}},
        transitions=[{"Status": "Starting", "StartTime": 1.5, "StatusMessage": "Preparing"}],
        failure_reason="AlgorithmError: boom",
        training_start_time=1_700_000_010.125,
        training_end_time=1_700_000_100.0,
        final_metrics=[{"MetricName": "loss", "Value": 0.1, "Timestamp": 1_700_000_099.0}],
        model_artifacts="s3://bucket/out/Full-Job/output/model.tar.gz",
        exit_code=3,
        stop_requested=True,
        lease_owner="server-a",
        lease_expires=1_700_000_200.75,
    )
    store.insert_training_job(rec)
    assert store.get_training_job("Full-Job") == rec


def test_get_is_case_insensitive_and_keeps_the_spelling(store: Store) -> None:
    store.insert_training_job(job("My-Job"))
    for spelling in ("My-Job", "my-job", "MY-JOB"):
        found = store.get_training_job(spelling)
        assert found is not None
        assert found.name == "My-Job"


def test_get_missing_is_none(store: Store) -> None:
    assert store.get_training_job("nope") is None


def test_duplicate_name_is_already_exists_case_insensitively(store: Store) -> None:
    store.insert_training_job(job("Dup-Job"))
    with pytest.raises(AlreadyExistsError) as raised:
        store.insert_training_job(job("dup-JOB"))
    assert raised.value.message == (
        "Training job names must be unique within an AWS account and region, and a training job "
        "with this name already exists (arn:aws:sagemaker:us-east-1:123456789012:training-job/dup-job)"
    )
    original = store.get_training_job("dup-job")
    assert original is not None and original.name == "Dup-Job"


def test_json_fields_round_trip(store: Store) -> None:
    spec = {
        "HyperParameters": {"lr": "0.001", "nested": {"deep": {"list": [1, 2.5, None, True, "x"]}}},
        "Floats": [0.1, 1e-300, 1.7976931348623157e308, -0.0, 123456789.123456789, 2**53 + 1],
        "Unicode": "naïve – 日本語 ✓",
        "Empty": {},
    }
    metrics = [{"MetricName": "acc", "Value": 0.30000000000000004}, {"MetricName": "n", "Value": 7}]
    store.insert_training_job(job("Json-Job", spec=spec, final_metrics=metrics, transitions=[{"a": [{}]}]))
    got = store.get_training_job("json-job")
    assert got is not None
    assert got.spec == spec
    assert json.dumps(got.spec) == json.dumps(spec)  # float bits and key order survive
    assert got.final_metrics == metrics
    assert got.transitions == [{"a": [{}]}]


def test_non_finite_floats_are_refused_on_every_backend(store: Store) -> None:
    with pytest.raises(StoreError):
        store.insert_training_job(job("Nan-Job", final_metrics=[{"MetricName": "m", "Value": float("nan")}]))
    assert store.get_training_job("nan-job") is None


# -- update --------------------------------------------------------------------------------------


def test_update_writes_every_field_and_returns_the_record(store: Store) -> None:
    store.insert_training_job(job("Upd-Job"))

    def finish(rec: TrainingJobRecord) -> None:
        rec.status = "Completed"
        rec.secondary_status = "Completed"
        rec.last_modified_time = 1_700_000_500.5
        rec.spec["Extra"] = {"k": [1.25]}
        rec.transitions.append({"Status": "Completed", "StartTime": 2.0})
        rec.failure_reason = "none really"
        rec.training_start_time = 10.5
        rec.training_end_time = 20.5
        rec.final_metrics = [{"MetricName": "loss", "Value": 0.25}]
        rec.model_artifacts = "s3://b/model.tar.gz"
        rec.exit_code = 0
        rec.stop_requested = True
        rec.lease_owner = "srv"
        rec.lease_expires = 99.5

    returned = store.update_training_job("UPD-JOB", finish)
    stored = store.get_training_job("upd-job")
    assert stored == returned
    assert stored is not None
    expected = job("Upd-Job")
    finish(expected)
    assert stored == expected


def test_update_can_clear_optional_fields(store: Store) -> None:
    store.insert_training_job(job("Clear-Job", exit_code=1, lease_owner="a", lease_expires=5.0))

    def clear(rec: TrainingJobRecord) -> None:
        rec.exit_code = None
        rec.lease_owner = None
        rec.lease_expires = None

    store.update_training_job("clear-job", clear)
    got = store.get_training_job("clear-job")
    assert got is not None
    assert (got.exit_code, got.lease_owner, got.lease_expires) == (None, None, None)


def test_update_missing_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError) as raised:
        store.update_training_job("ghost", lambda rec: None)
    assert raised.value.args == ("ghost",)


def test_update_that_raises_writes_nothing(store: Store) -> None:
    store.insert_training_job(job("Boom-Job"))

    def half_then_fail(rec: TrainingJobRecord) -> None:
        rec.status = "Failed"
        raise RuntimeError("mutate failed")

    with pytest.raises(RuntimeError, match="mutate failed"):
        store.update_training_job("boom-job", half_then_fail)
    got = store.get_training_job("boom-job")
    assert got is not None and got.status == "InProgress"


def test_update_cannot_rename(store: Store) -> None:
    store.insert_training_job(job("Named"))

    def rename(rec: TrainingJobRecord) -> None:
        rec.name = "Other"

    with pytest.raises(ValueError):
        store.update_training_job("named", rename)
    assert store.get_training_job("other") is None


def test_concurrent_updates_lose_nothing(store: Store) -> None:
    store.insert_training_job(job("Counter", spec={"counter": 0}))
    threads_n, per_thread = 8, 25
    start = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def bump(rec: TrainingJobRecord) -> None:
        rec.spec["counter"] += 1

    def worker() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                store.update_training_job("counter", bump)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    got = store.get_training_job("counter")
    assert got is not None and got.spec["counter"] == threads_n * per_thread


# -- list: filters -------------------------------------------------------------------------------


@pytest.fixture
def populated(store: Store) -> list[TrainingJobRecord]:
    """Twelve jobs: mixed-case names, statuses, equal creation times (to exercise the tiebreak)."""
    records = []
    for i in range(12):
        rec = job(
            f"{'Alpha' if i % 2 else 'beta'}-{i:02d}",
            status=STATUSES[i % len(STATUSES)],
            creation_time=1000.0 + (i // 3),  # three jobs share each creation time
            last_modified_time=2000.0 + i * 0.5,
        )
        store.insert_training_job(rec)
        records.append(rec)
    return records


def test_list_without_filters_returns_everything_newest_first(
    store: Store, populated: list[TrainingJobRecord]
) -> None:
    got = list_all(store)
    expected = sorted(populated, key=lambda r: (r.creation_time, r.name.lower()), reverse=True)
    assert got == expected


def test_name_contains_is_a_case_insensitive_substring(
    store: Store, populated: list[TrainingJobRecord]
) -> None:
    assert sorted(names(list_all(store, name_contains="ALPHA"))) == sorted(
        r.name for r in populated if "alpha" in r.name.lower()
    )
    assert names(list_all(store, name_contains="eta-0", sort_by="Name", sort_order="Ascending")) == [
        "beta-00",
        "beta-02",
        "beta-04",
        "beta-06",
        "beta-08",
    ]
    assert list_all(store, name_contains="zzz") == []


def test_name_contains_treats_like_wildcards_literally(store: Store) -> None:
    store.insert_training_job(job("plain-name"))
    store.insert_training_job(job("has_underscore"))
    store.insert_training_job(job("has%percent"))
    assert names(list_all(store, name_contains="_")) == ["has_underscore"]
    assert names(list_all(store, name_contains="%")) == ["has%percent"]


def test_status_equals(store: Store, populated: list[TrainingJobRecord]) -> None:
    for status in STATUSES:
        got = list_all(store, status_equals=status)
        assert sorted(names(got)) == sorted(r.name for r in populated if r.status == status)
        assert got
    assert list_all(store, status_equals="NoSuchStatus") == []


@pytest.mark.parametrize(
    ("field", "attribute", "compare"),
    [
        ("creation_time_after", "creation_time", lambda v, b: v > b),
        ("creation_time_before", "creation_time", lambda v, b: v < b),
        ("last_modified_time_after", "last_modified_time", lambda v, b: v > b),
        ("last_modified_time_before", "last_modified_time", lambda v, b: v < b),
    ],
)
def test_time_bounds_are_strict(
    store: Store,
    populated: list[TrainingJobRecord],
    field: str,
    attribute: str,
    compare: Callable[[float, float], bool],
) -> None:
    values = sorted({getattr(r, attribute) for r in populated})
    # Each existing value is a bound (strictness), plus bounds outside the range.
    for bound in [values[0] - 1, *values, values[-1] + 1]:
        got = list_all(store, **{field: bound})
        expected = [r.name for r in populated if compare(getattr(r, attribute), bound)]
        assert sorted(names(got)) == sorted(expected), (field, bound)


def test_filters_combine(store: Store, populated: list[TrainingJobRecord]) -> None:
    got = list_all(
        store,
        name_contains="alpha",
        status_equals="Completed",
        creation_time_after=1000.0,
        last_modified_time_before=2006.0,
    )
    expected = [
        r.name
        for r in populated
        if "alpha" in r.name.lower()
        and r.status == "Completed"
        and r.creation_time > 1000.0
        and r.last_modified_time < 2006.0
    ]
    assert sorted(names(got)) == sorted(expected)
    assert names(got) == ["Alpha-11"]  # Alpha-01 matches all but the strict creation bound


def test_training_jobs_in(store: Store, populated: list[TrainingJobRecord]) -> None:
    wanted = {"InProgress", "Stopping"}
    got = store.training_jobs_in(sorted(wanted))
    expected = sorted(
        (r for r in populated if r.status in wanted), key=lambda r: (r.creation_time, r.name.lower())
    )
    assert got == expected
    assert store.training_jobs_in([]) == []
    assert store.training_jobs_in(["Nothing"]) == []


# -- list: sorting and pagination ----------------------------------------------------------------

SORT_KEYS: dict[str, Callable[[TrainingJobRecord], Any]] = {
    "Name": lambda r: r.name.lower(),
    "CreationTime": lambda r: (r.creation_time, r.name.lower()),
    "Status": lambda r: (r.status, r.name.lower()),
}


@pytest.mark.parametrize("sort_by", list(SORT_KEYS))
@pytest.mark.parametrize("sort_order", ["Ascending", "Descending"])
def test_sort_orders(store: Store, populated: list[TrainingJobRecord], sort_by: str, sort_order: str) -> None:
    got = list_all(store, sort_by=sort_by, sort_order=sort_order)
    expected = sorted(populated, key=SORT_KEYS[sort_by], reverse=sort_order == "Descending")
    assert names(got) == names(expected)


def test_name_sort_is_bytewise_on_every_backend(store: Store) -> None:
    # A natural-language collation would order these by letters only, ignoring the hyphen.
    for name in ["ab", "a-c", "aa", "a-b", "a0", "A-a"]:
        store.insert_training_job(job(name))
    got = names(list_all(store, sort_by="Name", sort_order="Ascending"))
    assert got == sorted(["ab", "a-c", "aa", "a-b", "a0", "A-a"], key=str.lower)


def walk(store: Store, page_size: int, **query: Any) -> list[TrainingJobRecord]:
    seen: list[TrainingJobRecord] = []
    token: str | None = None
    for _ in range(1000):
        page, token = store.list_training_jobs(
            TrainingJobQuery(max_results=page_size, next_token=token, **query)
        )
        assert 0 < len(page) <= page_size
        seen.extend(page)
        if token is None:
            assert len(page) <= page_size
            return seen
        assert len(page) == page_size
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("page_size", [1, 3, 10])
@pytest.mark.parametrize("sort_by", list(SORT_KEYS))
@pytest.mark.parametrize("sort_order", ["Ascending", "Descending"])
def test_pagination_walks_every_row_once(
    store: Store, populated: list[TrainingJobRecord], page_size: int, sort_by: str, sort_order: str
) -> None:
    seen = walk(store, page_size, sort_by=sort_by, sort_order=sort_order)
    expected = sorted(populated, key=SORT_KEYS[sort_by], reverse=sort_order == "Descending")
    assert names(seen) == names(expected)
    assert len({r.name for r in seen}) == len(populated)


def test_pagination_with_a_filter(store: Store, populated: list[TrainingJobRecord]) -> None:
    seen = walk(store, 2, name_contains="beta", sort_by="Name", sort_order="Ascending")
    assert names(seen) == sorted(r.name for r in populated if "beta" in r.name)


def test_no_token_when_the_page_ends_exactly_at_the_last_row(
    store: Store, populated: list[TrainingJobRecord]
) -> None:
    page, token = store.list_training_jobs(TrainingJobQuery(max_results=len(populated)))
    assert len(page) == len(populated) and token is None
    page, token = store.list_training_jobs(TrainingJobQuery(max_results=len(populated) - 1))
    assert len(page) == len(populated) - 1 and token is not None


def test_pagination_survives_inserts_between_pages(store: Store) -> None:
    for i in range(6):
        store.insert_training_job(job(f"job-{i}", creation_time=float(i)))
    first, token = store.list_training_jobs(
        TrainingJobQuery(max_results=3, sort_by="CreationTime", sort_order="Ascending")
    )
    # A job sorting before the cursor must not shift the next page (offsets would repeat job-2).
    store.insert_training_job(job("job-early", creation_time=-1.0))
    rest, token = store.list_training_jobs(
        TrainingJobQuery(max_results=10, sort_by="CreationTime", sort_order="Ascending", next_token=token)
    )
    assert names(first) == ["job-0", "job-1", "job-2"]
    assert names(rest) == ["job-3", "job-4", "job-5"]
    assert token is None


def _token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not a token!",
        "",
        "%%%%",
        base64.urlsafe_b64encode(b"\xff\xfe not utf-8").decode(),
        _token("a string"),
        _token({"s": "CreationTime", "o": "Descending"}),
        _token({"s": "CreationTime", "o": "Descending", "k": ["x", "y"]}),
        _token({"s": "CreationTime", "o": "Descending", "k": [True, "y"]}),
        _token({"s": "CreationTime", "o": "Descending", "k": [1.0]}),
        _token({"s": "CreationTime", "o": "Descending", "k": [10**400, "a"]}),
        "tökén",
        _token({"s": "Name", "o": "Descending", "k": ["a"]}),  # from another sort
        _token({"s": "CreationTime", "o": "Ascending", "k": [1.0, "a"]}),  # another order
    ],
)
def test_invalid_token(store: Store, populated: list[TrainingJobRecord], token: str) -> None:
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        store.list_training_jobs(TrainingJobQuery(next_token=token))


def test_token_from_another_sort_is_invalid(store: Store, populated: list[TrainingJobRecord]) -> None:
    _, token = store.list_training_jobs(TrainingJobQuery(max_results=2, sort_by="Name"))
    assert token is not None
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        store.list_training_jobs(TrainingJobQuery(max_results=2, sort_by="Status", next_token=token))


# -- schema --------------------------------------------------------------------------------------


def test_migrate_twice_is_harmless(store: Store) -> None:
    store.insert_training_job(job("Survivor"))
    store.migrate()
    store.migrate()
    assert store.get_training_job("survivor") is not None


def test_migrations_match_the_schema_module(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert diff == []
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert version == ScriptDirectory.from_config(config).get_current_head()


def test_concurrent_first_migrations(store_url: str) -> None:
    stores = [Store(store_url) for _ in range(4)]
    errors: list[BaseException] = []

    def migrate(s: Store) -> None:
        try:
            s.migrate()
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not errors, errors
        stores[0].insert_training_job(job("After-Race"))
        assert stores[1].get_training_job("after-race") is not None
    finally:
        for s in stores:
            s.close()


def test_sqlite_store_creates_its_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "homeport.db"
    with Store(f"sqlite:///{path}") as s:
        s.migrate()
        assert path.is_file()
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000


def test_record_fields_all_have_columns() -> None:
    columns = set(metadata.tables["training_jobs"].c.keys())
    assert {f.name for f in dataclasses.fields(TrainingJobRecord)} | {"name_key"} == columns
