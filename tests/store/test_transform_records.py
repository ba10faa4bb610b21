"""Contract suite for the store's transform-job methods, run on SQLite and PostgreSQL alike, plus
the 0002 → 0003 migration that added the ``transform_jobs`` table.

ListTransformJobs has ListTrainingJobs' filters and sorts, so listing takes a TrainingJobQuery.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from homeport.errors import AlreadyExistsError, StoreError
from homeport.store.database import MIGRATIONS_DIR, Store
from homeport.store.records import (
    EndpointRecord,
    ModelRecord,
    ResourceQuery,
    TrainingJobQuery,
    TrainingJobRecord,
    TransformJobRecord,
)
from homeport.store.schema import metadata

ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"
STATUSES = ["InProgress", "Completed", "Failed", "Stopping", "Stopped"]


def transform_job(name: str, **overrides: Any) -> TransformJobRecord:
    values: dict[str, Any] = {
        "name": name,
        "arn": f"{ARN_PREFIX}:transform-job/{name.lower()}",
        "status": "InProgress",
        "creation_time": 1_700_000_000.0,
        "last_modified_time": 1_700_000_000.0,
        "spec": {"TransformJobName": name, "ModelName": "m"},
    }
    values.update(overrides)
    return TransformJobRecord(**values)


def training_job(name: str) -> TrainingJobRecord:
    return TrainingJobRecord(
        name=name,
        arn=f"{ARN_PREFIX}:training-job/{name.lower()}",
        status="Completed",
        secondary_status="Completed",
        creation_time=1_700_000_000.5,
        last_modified_time=1_700_000_100.5,
        spec={"HyperParameters": {"a": "1"}},
        final_metrics=[{"MetricName": "loss", "Value": 0.25}],
    )


def names(records: list[TransformJobRecord]) -> list[str]:
    return [r.name for r in records]


def list_all(store: Store, **query: Any) -> list[TransformJobRecord]:
    records, token = store.list_transform_jobs(TrainingJobQuery(max_results=100, **query))
    assert token is None
    return records


SORT_KEYS: dict[str, Callable[[TransformJobRecord], Any]] = {
    "Name": lambda r: r.name.lower(),
    "CreationTime": lambda r: (r.creation_time, r.name.lower()),
    "Status": lambda r: (r.status, r.name.lower()),
}


@pytest.fixture
def populated(store: Store) -> list[TransformJobRecord]:
    """Twelve jobs: mixed-case names, statuses, equal creation times (to exercise the tiebreak)."""
    records = []
    for i in range(12):
        rec = transform_job(
            f"{'Alpha' if i % 2 else 'beta'}-{i:02d}",
            status=STATUSES[i % len(STATUSES)],
            creation_time=1000.0 + (i // 3),  # three jobs share each creation time
            last_modified_time=2000.0 + i * 0.5,
        )
        store.insert_transform_job(rec)
        records.append(rec)
    return records


# -- insert / get ---------------------------------------------------------------------------------


def test_insert_then_get_returns_every_field(store: Store) -> None:
    rec = transform_job(
        "Full-Transform",
        status="Failed",
        creation_time=1_700_000_001.25,
        last_modified_time=1_700_000_123.5,
        spec={
            "TransformJobName": "Full-Transform",
            "ModelName": "my-model",
            "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/in/"}}, "SplitType": "Line"},
            "TransformOutput": {"S3OutputPath": "s3://b/out/"},
            "Unicode": "naïve – 日本語 ✓",
        },
        failure_reason="ClientError: bad record",
        transform_start_time=1_700_000_010.125,
        transform_end_time=1_700_000_100.0,
        stop_requested=True,
        progress={"objects_done": 3, "objects_total": 4, "records_done": 1200, "records_total": None},
        lease_owner="server-a",
        lease_expires=1_700_000_200.75,
    )
    store.insert_transform_job(rec)
    got = store.get_transform_job("full-transform")
    assert got == rec
    assert got is not None and json.dumps(got.spec) == json.dumps(rec.spec)  # key order survives


def test_defaults_round_trip(store: Store) -> None:
    rec = transform_job("Bare")
    store.insert_transform_job(rec)
    got = store.get_transform_job("bare")
    assert got == rec
    assert got is not None and got.progress == {} and got.stop_requested is False
    assert (got.failure_reason, got.transform_start_time, got.transform_end_time) == (None, None, None)


def test_get_is_case_insensitive_and_keeps_the_spelling(store: Store) -> None:
    store.insert_transform_job(transform_job("My-Transform"))
    for spelling in ("My-Transform", "my-transform", "MY-TRANSFORM"):
        found = store.get_transform_job(spelling)
        assert found is not None and found.name == "My-Transform"
    assert store.get_transform_job("nope") is None


def test_duplicate_name_is_already_exists_case_insensitively(store: Store) -> None:
    store.insert_transform_job(transform_job("Dup-Job"))
    with pytest.raises(AlreadyExistsError) as raised:
        store.insert_transform_job(transform_job("dup-JOB", spec={"other": True}))
    assert raised.value.message == (
        "Transform job names must be unique within an AWS account and region, and a transform job "
        "with this name already exists (arn:aws:sagemaker:us-east-1:123456789012:transform-job/dup-job)"
    )
    assert raised.value.code == "ResourceInUse"
    original = store.get_transform_job("dup-job")
    assert original is not None and original.name == "Dup-Job" and "other" not in original.spec


def test_same_name_as_a_training_job_is_no_duplicate(store: Store) -> None:
    store.insert_training_job(training_job("Shared"))
    store.insert_transform_job(transform_job("Shared"))
    assert store.get_training_job("shared") is not None
    assert store.get_transform_job("shared") is not None


def test_non_finite_floats_are_refused_on_every_backend(store: Store) -> None:
    with pytest.raises(StoreError):
        store.insert_transform_job(transform_job("Nan-Job", progress={"ratio": float("nan")}))
    assert store.get_transform_job("nan-job") is None


# -- update ---------------------------------------------------------------------------------------


def test_update_writes_every_field_and_returns_the_record(store: Store) -> None:
    store.insert_transform_job(transform_job("Upd-Job", lease_owner="a", lease_expires=5.0))

    def finish(rec: TransformJobRecord) -> None:
        rec.arn = f"{ARN_PREFIX}:transform-job/elsewhere"  # every field is written back, even this
        rec.status = "Completed"
        rec.creation_time = 1.5
        rec.last_modified_time = 1_700_000_500.5
        rec.spec["Extra"] = {"k": [1.25]}
        rec.failure_reason = "none really"
        rec.transform_start_time = 10.5
        rec.transform_end_time = 20.5
        rec.stop_requested = True
        rec.progress = {"objects_done": 2, "objects_total": 2, "records_done": 7, "records_total": 7}
        rec.lease_owner = None
        rec.lease_expires = None

    returned = store.update_transform_job("UPD-JOB", finish)
    expected = transform_job("Upd-Job", lease_owner="a", lease_expires=5.0)
    finish(expected)
    assert returned == expected
    assert store.get_transform_job("upd-job") == expected


def test_update_missing_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError) as raised:
        store.update_transform_job("Ghost", lambda rec: None)
    assert raised.value.args == ("Ghost",)


def test_update_that_raises_writes_nothing(store: Store) -> None:
    store.insert_transform_job(transform_job("Boom-Job"))

    def half_then_fail(rec: TransformJobRecord) -> None:
        rec.status = "Failed"
        rec.progress["objects_done"] = 1
        raise RuntimeError("mutate failed")

    with pytest.raises(RuntimeError, match="mutate failed"):
        store.update_transform_job("boom-job", half_then_fail)
    got = store.get_transform_job("boom-job")
    assert got is not None and got.status == "InProgress" and got.progress == {}


def test_update_that_stores_non_finite_floats_is_refused(store: Store) -> None:
    store.insert_transform_job(transform_job("Inf-Job"))

    def bad(rec: TransformJobRecord) -> None:
        rec.progress = {"rate": float("inf")}

    with pytest.raises(StoreError):
        store.update_transform_job("inf-job", bad)
    got = store.get_transform_job("inf-job")
    assert got is not None and got.progress == {}


def test_update_cannot_rename_but_may_respell(store: Store) -> None:
    store.insert_transform_job(transform_job("Named"))

    def rename(rec: TransformJobRecord) -> None:
        rec.name = "Other"

    with pytest.raises(ValueError):
        store.update_transform_job("named", rename)
    assert store.get_transform_job("other") is None

    def respell(rec: TransformJobRecord) -> None:
        rec.name = "NAMED"

    store.update_transform_job("named", respell)
    got = store.get_transform_job("named")
    assert got is not None and got.name == "NAMED"


def test_concurrent_updates_lose_nothing(store: Store) -> None:
    store.insert_transform_job(transform_job("Counter", progress={"records_done": 0}))
    threads_n, per_thread = 8, 25
    start = threading.Barrier(threads_n)

    def bump(rec: TransformJobRecord) -> None:
        rec.progress["records_done"] += 1

    def worker() -> None:
        start.wait(timeout=60)  # every thread starts updating at once
        for _ in range(per_thread):
            store.update_transform_job("counter", bump)

    with ThreadPoolExecutor(max_workers=threads_n) as pool:
        futures = [pool.submit(worker) for _ in range(threads_n)]
        for future in futures:
            future.result(timeout=120)  # re-raises a worker's exception here
    got = store.get_transform_job("counter")
    assert got is not None and got.progress["records_done"] == threads_n * per_thread


def test_transform_jobs_in(store: Store, populated: list[TransformJobRecord]) -> None:
    wanted = {"InProgress", "Stopping"}
    got = store.transform_jobs_in(sorted(wanted))
    expected = sorted((r for r in populated if r.status in wanted), key=SORT_KEYS["CreationTime"])
    assert got == expected and got
    assert store.transform_jobs_in([]) == []
    assert store.transform_jobs_in(["Nothing"]) == []


def test_transform_jobs_in_sees_only_transform_jobs(store: Store) -> None:
    store.insert_training_job(
        dataclasses.replace(training_job("Trainer"), status="InProgress", secondary_status="Starting")
    )
    store.insert_transform_job(transform_job("Transformer"))
    assert names(store.transform_jobs_in(["InProgress"])) == ["Transformer"]


# -- list: filters --------------------------------------------------------------------------------


def test_list_without_filters_returns_everything_newest_first(
    store: Store, populated: list[TransformJobRecord]
) -> None:
    newest_first = sorted(populated, key=SORT_KEYS["CreationTime"], reverse=True)
    assert list_all(store) == newest_first
    page, token = store.list_transform_jobs(TrainingJobQuery())
    assert page == newest_first[:10] and token is not None  # max_results defaults to 10


def test_list_of_nothing(store: Store) -> None:
    store.insert_training_job(training_job("Not-A-Transform"))
    assert store.list_transform_jobs(TrainingJobQuery()) == ([], None)


def test_name_contains_is_a_case_insensitive_literal_substring(
    store: Store, populated: list[TransformJobRecord]
) -> None:
    got = list_all(store, name_contains="ALPHA")
    assert sorted(names(got)) == sorted(r.name for r in populated if "alpha" in r.name.lower())
    got = list_all(store, name_contains="eta-0", sort_by="Name", sort_order="Ascending")
    assert names(got) == ["beta-00", "beta-02", "beta-04", "beta-06", "beta-08"]
    assert list_all(store, name_contains="zzz") == []
    store.insert_transform_job(transform_job("has_underscore"))
    store.insert_transform_job(transform_job("has%percent"))
    assert names(list_all(store, name_contains="_")) == ["has_underscore"]
    assert names(list_all(store, name_contains="%")) == ["has%percent"]


def test_status_equals(store: Store, populated: list[TransformJobRecord]) -> None:
    for status in STATUSES:
        got = list_all(store, status_equals=status)
        assert got and sorted(names(got)) == sorted(r.name for r in populated if r.status == status)
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
    populated: list[TransformJobRecord],
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


def test_filters_combine(store: Store, populated: list[TransformJobRecord]) -> None:
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
    assert names(got) == expected == ["Alpha-11"]  # Alpha-01 matches all but the strict creation bound


@pytest.mark.parametrize("query", [{"sort_by": "Bogus"}, {"sort_order": "Sideways"}, {"max_results": 0}])
def test_bad_queries_are_value_errors(store: Store, query: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        store.list_transform_jobs(TrainingJobQuery(**query))


# -- list: sorting and pagination -----------------------------------------------------------------


@pytest.mark.parametrize("sort_by", list(SORT_KEYS))
@pytest.mark.parametrize("sort_order", ["Ascending", "Descending"])
def test_sort_orders(
    store: Store, populated: list[TransformJobRecord], sort_by: str, sort_order: str
) -> None:
    got = list_all(store, sort_by=sort_by, sort_order=sort_order)
    expected = sorted(populated, key=SORT_KEYS[sort_by], reverse=sort_order == "Descending")
    assert names(got) == names(expected)


def test_name_sort_is_bytewise_on_every_backend(store: Store) -> None:
    # A natural-language collation would order these by letters only, ignoring the hyphen.
    spellings = ["ab", "a-c", "aa", "a-b", "a0", "A-a"]
    for name in spellings:
        store.insert_transform_job(transform_job(name))
    got = names(list_all(store, sort_by="Name", sort_order="Ascending"))
    assert got == sorted(spellings, key=str.lower)


def test_status_sort_is_bytewise_on_every_backend(store: Store) -> None:
    # Status is a sort key too: "In-Progress"-like punctuation must not be ignored.
    statuses = ["b", "a-c", "ab", "A-b"]
    for i, status in enumerate(statuses):
        store.insert_transform_job(transform_job(f"job-{i}", status=status))
    got = [r.status for r in list_all(store, sort_by="Status", sort_order="Ascending")]
    assert got == sorted(statuses)


def walk(store: Store, page_size: int, token: str | None = None, **query: Any) -> list[TransformJobRecord]:
    """Every page from ``token`` (None: the first page) on, checking the page sizes."""
    seen: list[TransformJobRecord] = []
    for _ in range(100):
        page, token = store.list_transform_jobs(
            TrainingJobQuery(max_results=page_size, next_token=token, **query)
        )
        seen.extend(page)
        if token is None:
            assert 0 < len(page) <= page_size
            return seen
        assert len(page) == page_size
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("page_size", [1, 3, 5])
@pytest.mark.parametrize("sort_by", list(SORT_KEYS))
@pytest.mark.parametrize("sort_order", ["Ascending", "Descending"])
def test_pagination_walks_every_row_once(
    store: Store, populated: list[TransformJobRecord], page_size: int, sort_by: str, sort_order: str
) -> None:
    seen = walk(store, page_size, sort_by=sort_by, sort_order=sort_order)
    expected = sorted(populated, key=SORT_KEYS[sort_by], reverse=sort_order == "Descending")
    assert names(seen) == names(expected)
    assert len({r.name for r in seen}) == len(populated)


def test_pagination_with_a_filter_and_changes_between_pages(
    store: Store, populated: list[TransformJobRecord]
) -> None:
    first, token = store.list_transform_jobs(
        TrainingJobQuery(max_results=2, name_contains="beta", sort_by="Name", sort_order="Ascending")
    )
    # A row created before the cursor must not shift the next page (offsets would repeat one).
    store.insert_transform_job(transform_job("beta-000"))
    rest = walk(store, 2, name_contains="beta", sort_by="Name", sort_order="Ascending", token=token)
    betas = sorted(r.name for r in populated if "beta" in r.name)
    assert names(first) == betas[:2]
    assert names(rest) == betas[2:]


def test_no_token_when_the_page_ends_exactly_at_the_last_row(
    store: Store, populated: list[TransformJobRecord]
) -> None:
    page, token = store.list_transform_jobs(TrainingJobQuery(max_results=len(populated)))
    assert len(page) == len(populated) and token is None
    page, token = store.list_transform_jobs(TrainingJobQuery(max_results=len(populated) - 1))
    assert len(page) == len(populated) - 1 and token is not None


def _token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _keyed(key: Any, table: str = "transform_jobs", sort_by: str = "CreationTime") -> str:
    return _token({"t": table, "s": sort_by, "o": "Descending", "k": key})


@pytest.mark.parametrize(
    "token",
    [
        "not a token!",
        "",
        "tökén",
        _token("a string"),
        _token({"s": "CreationTime", "o": "Descending", "k": [1.0, "a"]}),  # names no table
        _keyed([1.0, "a"], table="training_jobs"),  # another table
        _keyed(["x", "y"]),
        _keyed([True, "y"]),
        _keyed([1.0]),
        _keyed([1.0, "a", "b"]),
        _keyed([10**400, "a"]),
        _keyed(["a"], sort_by="Name"),  # from another sort
        _keyed("not a list"),
    ],
)
def test_invalid_token(store: Store, populated: list[TransformJobRecord], token: str) -> None:
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        store.list_transform_jobs(TrainingJobQuery(next_token=token))


def test_a_well_formed_token_resumes(store: Store, populated: list[TransformJobRecord]) -> None:
    token = _keyed([1002, "beta-07"])  # an int time is accepted too
    got, next_token = store.list_transform_jobs(TrainingJobQuery(max_results=100, next_token=token))
    newest_first = sorted(populated, key=SORT_KEYS["CreationTime"], reverse=True)
    assert got == [r for r in newest_first if SORT_KEYS["CreationTime"](r) < (1002.0, "beta-07")]
    assert len(got) == 8 and next_token is None


def test_tokens_do_not_cross_between_training_and_transform_jobs(
    store: Store, populated: list[TransformJobRecord]
) -> None:
    for name in ("job-1", "job-2"):
        store.insert_training_job(training_job(name))
    _, training_token = store.list_training_jobs(TrainingJobQuery(max_results=1))
    _, transform_token = store.list_transform_jobs(TrainingJobQuery(max_results=1))
    assert training_token is not None and transform_token is not None
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        store.list_transform_jobs(TrainingJobQuery(max_results=1, next_token=training_token))
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        store.list_training_jobs(TrainingJobQuery(max_results=1, next_token=transform_token))
    store.insert_endpoint(
        EndpointRecord(
            name="ep-1",
            arn=f"{ARN_PREFIX}:endpoint/ep-1",
            config_name="cfg",
            status="InService",
            creation_time=1.0,
            last_modified_time=1.0,
            spec={},
        )
    )
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        store.list_endpoints(ResourceQuery(max_results=1, next_token=transform_token))
    _, by_name = store.list_transform_jobs(TrainingJobQuery(max_results=1, sort_by="Name"))
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        store.list_transform_jobs(TrainingJobQuery(max_results=1, sort_by="Status", next_token=by_name))


# -- schema and migration -------------------------------------------------------------------------


def alembic_config(url: str) -> Config:
    """A config that migrates ``url`` through env.py's own connection (as the alembic CLI would)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _tables_and_version(store: Store) -> tuple[set[str], str]:
    with store.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    return tables, str(version)


def _transform_indexes(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return {str(ix["name"]) for ix in sa.inspect(conn).get_indexes("transform_jobs")}


def test_head_has_the_transform_table(store: Store) -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revision = script.get_revision("0003")
    assert revision is not None and revision.down_revision == "0002"
    tables, version = _tables_and_version(store)
    assert version == script.get_current_head() and "transform_jobs" in tables
    assert _transform_indexes(store) == {
        "ix_transform_jobs_status_name_key",
        "ix_transform_jobs_creation_time_name_key",
        "ix_transform_jobs_last_modified_time_name_key",
    }


def test_sort_keys_are_bytewise_collated_on_postgresql(store: Store) -> None:
    if store.dialect != "postgresql":
        # SQLite compares text bytewise already; the check below is PostgreSQL's catalogue.
        assert store.dialect == "sqlite"
        return
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_name = 'transform_jobs' AND column_name IN ('name_key', 'status')"
            )
        ).all()
    assert sorted((str(c), str(k)) for c, k in rows) == [("name_key", "C"), ("status", "C")]


def test_migration_from_0002_to_0003_keeps_existing_rows(store_url: str) -> None:
    config = alembic_config(store_url)
    command.upgrade(config, "0002")
    old_job = training_job("Old-Job")
    old_model = ModelRecord(
        name="Old-Model",
        arn=f"{ARN_PREFIX}:model/old-model",
        creation_time=1_700_000_000.25,
        spec={"ModelName": "Old-Model", "PrimaryContainer": {"Image": "img:1"}},
    )
    old_endpoint = EndpointRecord(
        name="Old-Endpoint",
        arn=f"{ARN_PREFIX}:endpoint/old-endpoint",
        config_name="cfg",
        status="InService",
        creation_time=1_700_000_000.75,
        last_modified_time=1_700_000_001.0,
        spec={"EndpointName": "Old-Endpoint", "EndpointConfigName": "cfg"},
        variants=[{"VariantName": "AllTraffic", "CurrentWeight": 1.0}],
    )
    with Store(store_url) as s:
        tables, version = _tables_and_version(s)
        assert version == "0002" and "transform_jobs" not in tables
        s.insert_training_job(old_job)
        s.insert_model(old_model)
        s.insert_endpoint(old_endpoint)
        s.add_tags(old_job.arn, [("k", "v")])

        def unchanged() -> None:
            assert s.get_training_job("old-job") == old_job
            assert s.get_model("old-model") == old_model
            assert s.get_endpoint("old-endpoint") == old_endpoint
            assert s.list_tags(old_job.arn) == [("k", "v")]

        command.upgrade(config, "0003")
        tables, version = _tables_and_version(s)
        assert version == "0003" and "transform_jobs" in tables
        unchanged()
        new = transform_job("New-Transform", progress={"objects_done": 0})
        s.insert_transform_job(new)
        assert s.get_transform_job("new-transform") == new

        # And back: the downgrade drops only what 0003 added.
        command.downgrade(config, "0002")
        tables, version = _tables_and_version(s)
        assert version == "0002" and "transform_jobs" not in tables
        unchanged()

        s.migrate()  # to head again
        tables, _ = _tables_and_version(s)
        assert "transform_jobs" in tables
        assert s.get_transform_job("new-transform") is None
        unchanged()


def test_record_fields_all_have_columns() -> None:
    columns = set(metadata.tables["transform_jobs"].c.keys())
    assert {f.name for f in dataclasses.fields(TransformJobRecord)} | {"name_key"} == columns
