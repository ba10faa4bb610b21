"""Contract suite for the store's hosting methods (models, endpoint configurations, endpoints),
run on SQLite and PostgreSQL alike, plus the 0001 → 0002 migration that added their tables.

What the three resource types share (create, case-insensitive get, delete, listing) runs once
per type through :class:`Kind`; what only endpoints have (update, status, last-modified time)
has its own tests.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from homeport.errors import AlreadyExistsError, StoreError
from homeport.store.database import MIGRATIONS_DIR, Store
from homeport.store.records import (
    EndpointConfigRecord,
    EndpointRecord,
    ModelRecord,
    ResourceQuery,
    TrainingJobQuery,
    TrainingJobRecord,
)
from homeport.store.schema import metadata

ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"
ENDPOINT_STATUSES = ["Creating", "InService", "Updating", "Failed", "Deleting", "OutOfService"]


def _values(name: str, arn_type: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "arn": f"{ARN_PREFIX}:{arn_type}/{name.lower()}",
        "creation_time": 1_700_000_000.0,
        **defaults,
        **overrides,
    }


def model(name: str, **overrides: Any) -> ModelRecord:
    spec = {"ModelName": name, "PrimaryContainer": {"Image": "img:1"}}
    return ModelRecord(**_values(name, "model", {"spec": spec}, overrides))


def endpoint_config(name: str, **overrides: Any) -> EndpointConfigRecord:
    spec = {"EndpointConfigName": name, "ProductionVariants": [{"VariantName": "AllTraffic"}]}
    return EndpointConfigRecord(**_values(name, "endpoint-config", {"spec": spec}, overrides))


def endpoint(name: str, **overrides: Any) -> EndpointRecord:
    defaults = {
        "config_name": "cfg",
        "status": "Creating",
        "last_modified_time": 1_700_000_000.0,
        "spec": {"EndpointName": name, "EndpointConfigName": "cfg"},
    }
    return EndpointRecord(**_values(name, "endpoint", defaults, overrides))


@dataclass(frozen=True)
class Kind:
    """One hosting resource type: its record factory, the store methods and duplicate wording."""

    suffix: str  # insert_<suffix>, get_<suffix>, delete_<suffix>, list_<suffix>s
    table: str
    make: Callable[..., Any]
    duplicate: str  # AlreadyExistsError message, {arn} standing for the existing resource's ARN
    sorts: tuple[str, ...]

    def insert(self, store: Store, rec: Any) -> None:
        getattr(store, f"insert_{self.suffix}")(rec)

    def get(self, store: Store, name: str) -> Any:
        return getattr(store, f"get_{self.suffix}")(name)

    def delete(self, store: Store, name: str) -> bool:
        deleted: bool = getattr(store, f"delete_{self.suffix}")(name)
        return deleted

    def list(self, store: Store, q: ResourceQuery) -> tuple[list[Any], str | None]:
        page: tuple[list[Any], str | None] = getattr(store, f"list_{self.suffix}s")(q)
        return page

    def __str__(self) -> str:
        return self.suffix


MODEL = Kind(
    "model", "models", model, 'Cannot create already existing model "{arn}".', ("Name", "CreationTime")
)
CONFIG = Kind(
    "endpoint_config",
    "endpoint_configs",
    endpoint_config,
    'Cannot create already existing endpoint configuration "{arn}".',
    ("Name", "CreationTime"),
)
ENDPOINT = Kind(
    "endpoint",
    "endpoints",
    endpoint,
    'Cannot create already existing endpoint "{arn}".',
    ("Name", "CreationTime", "Status"),
)
KINDS = [MODEL, CONFIG, ENDPOINT]
SORTED_KINDS = [(k, s) for k in KINDS for s in k.sorts]

SORT_KEYS: dict[str, Callable[[Any], Any]] = {
    "Name": lambda r: r.name.lower(),
    "CreationTime": lambda r: (r.creation_time, r.name.lower()),
    "Status": lambda r: (r.status, r.name.lower()),
}


def names(records: list[Any]) -> list[str]:
    return [r.name for r in records]


def list_all(store: Store, kind: Kind, **query: Any) -> list[Any]:
    records, token = kind.list(store, ResourceQuery(max_results=100, **query))
    assert token is None
    return records


def populate(store: Store, kind: Kind) -> list[Any]:
    """Twelve records: mixed-case names, three sharing each creation time (to exercise the
    tiebreak); endpoints also get varied statuses and last-modified times."""
    records = []
    for i in range(12):
        extra: dict[str, Any] = {}
        if kind is ENDPOINT:
            extra = {
                "status": ENDPOINT_STATUSES[i % len(ENDPOINT_STATUSES)],
                "last_modified_time": 2000.0 + i * 0.5,
            }
        rec = kind.make(f"{'Alpha' if i % 2 else 'beta'}-{i:02d}", creation_time=1000.0 + (i // 3), **extra)
        kind.insert(store, rec)
        records.append(rec)
    return records


# -- create / get / delete, every resource type ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_get_is_case_insensitive_and_keeps_the_spelling(store: Store, kind: Kind) -> None:
    rec = kind.make("My-Resource", creation_time=1_700_000_001.25, spec={"Deep": {"List": [1, 2.5, None]}})
    kind.insert(store, rec)
    for spelling in ("My-Resource", "my-resource", "MY-RESOURCE"):
        assert kind.get(store, spelling) == rec
    assert kind.get(store, "nope") is None


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_duplicate_name_is_already_exists_in_sagemaker_words(store: Store, kind: Kind) -> None:
    kind.insert(store, kind.make("Dup-Name"))
    with pytest.raises(AlreadyExistsError) as raised:
        kind.insert(store, kind.make("dup-NAME", spec={"other": True}))
    existing_arn = kind.make("dup-NAME").arn
    assert raised.value.message == kind.duplicate.format(arn=existing_arn)
    assert raised.value.code == "ResourceInUse"
    original = kind.get(store, "dup-name")
    assert original is not None and original.name == "Dup-Name" and "other" not in original.spec


def test_duplicate_messages_are_exact() -> None:
    # Spelled out once, so that a typo in Kind.duplicate cannot hide one in the store.
    assert MODEL.duplicate.format(arn="A") == 'Cannot create already existing model "A".'
    assert CONFIG.duplicate.format(arn="A") == 'Cannot create already existing endpoint configuration "A".'
    assert ENDPOINT.duplicate.format(arn="A") == 'Cannot create already existing endpoint "A".'


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_same_name_in_another_resource_type_is_no_duplicate(store: Store, kind: Kind) -> None:
    kind.insert(store, kind.make("Shared"))
    for other in KINDS:
        if other is not kind:
            other.insert(store, other.make("Shared"))
    assert all(k.get(store, "shared") is not None for k in KINDS)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_delete_is_case_insensitive_and_says_whether_it_deleted(store: Store, kind: Kind) -> None:
    kind.insert(store, kind.make("Doomed"))
    kind.insert(store, kind.make("Kept"))
    assert kind.delete(store, "DOOMED") is True
    assert kind.get(store, "doomed") is None
    assert kind.delete(store, "doomed") is False
    assert kind.delete(store, "never-was") is False
    assert kind.get(store, "kept") is not None
    # The name is free again.
    kind.insert(store, kind.make("doomed"))
    again = kind.get(store, "Doomed")
    assert again is not None and again.name == "doomed"


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_non_finite_floats_are_refused(store: Store, kind: Kind) -> None:
    with pytest.raises(StoreError):
        kind.insert(store, kind.make("Nan", spec={"x": float("inf")}))
    assert kind.get(store, "nan") is None


def test_endpoint_every_field_round_trips(store: Store) -> None:
    rec = endpoint(
        "Full-Endpoint",
        config_name="Cfg-2",
        status="Updating",
        creation_time=1_700_000_001.25,
        last_modified_time=1_700_000_123.5,
        spec={"EndpointName": "Full-Endpoint", "EndpointConfigName": "Cfg-1", "Unicode": "naïve ✓"},
        variants=[
            {
                "VariantName": "AllTraffic",
                "CurrentWeight": 1.0,
                "CurrentInstanceCount": 2,
                "DeployedImages": [{"SpecifiedImage": "img:1", "ResolvedImage": "img@sha"}],
            }
        ],
        failure_reason="nope",
        pending_config_name="Cfg-3",
        lease_owner="server-a",
        lease_expires=1_700_000_200.75,
    )
    store.insert_endpoint(rec)
    got = store.get_endpoint("full-endpoint")
    assert got == rec
    assert got is not None and json.dumps(got.variants) == json.dumps(rec.variants)


# -- update_endpoint ------------------------------------------------------------------------------


def test_update_endpoint_writes_every_field_and_returns_the_record(store: Store) -> None:
    store.insert_endpoint(endpoint("Upd-Ep", lease_owner="a", lease_expires=5.0, failure_reason="x"))

    def change(rec: EndpointRecord) -> None:
        rec.arn = f"{ARN_PREFIX}:endpoint/elsewhere"  # every field is written back, even this one
        rec.config_name = "cfg-2"
        rec.status = "InService"
        rec.creation_time = 1.5
        rec.last_modified_time = 1_700_000_500.5
        rec.spec["Extra"] = {"k": [1.25]}
        rec.variants.append({"VariantName": "v", "CurrentWeight": 0.5})
        rec.failure_reason = None
        rec.pending_config_name = "cfg-3"
        rec.lease_owner = None
        rec.lease_expires = None

    returned = store.update_endpoint("UPD-EP", change)
    expected = endpoint("Upd-Ep", lease_owner="a", lease_expires=5.0, failure_reason="x")
    change(expected)
    assert returned == expected
    assert store.get_endpoint("upd-ep") == expected


def test_update_missing_endpoint_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError) as raised:
        store.update_endpoint("Ghost", lambda rec: None)
    assert raised.value.args == ("Ghost",)


def test_update_endpoint_that_raises_writes_nothing(store: Store) -> None:
    store.insert_endpoint(endpoint("Boom"))

    def half_then_fail(rec: EndpointRecord) -> None:
        rec.status = "Failed"
        raise RuntimeError("mutate failed")

    with pytest.raises(RuntimeError, match="mutate failed"):
        store.update_endpoint("boom", half_then_fail)
    got = store.get_endpoint("boom")
    assert got is not None and got.status == "Creating"


def test_update_endpoint_cannot_rename_but_may_respell(store: Store) -> None:
    store.insert_endpoint(endpoint("Named"))

    def rename(rec: EndpointRecord) -> None:
        rec.name = "Other"

    with pytest.raises(ValueError):
        store.update_endpoint("named", rename)
    assert store.get_endpoint("other") is None

    def respell(rec: EndpointRecord) -> None:
        rec.name = "NAMED"

    store.update_endpoint("named", respell)
    got = store.get_endpoint("named")
    assert got is not None and got.name == "NAMED"


def test_concurrent_endpoint_updates_lose_nothing(store: Store) -> None:
    store.insert_endpoint(endpoint("Counter", spec={"counter": 0}))
    threads_n, per_thread = 8, 25
    start = threading.Barrier(threads_n)

    def bump(rec: EndpointRecord) -> None:
        rec.spec["counter"] += 1

    def worker() -> None:
        start.wait(timeout=60)  # every thread starts updating at once
        for _ in range(per_thread):
            store.update_endpoint("counter", bump)

    with ThreadPoolExecutor(max_workers=threads_n) as pool:
        futures = [pool.submit(worker) for _ in range(threads_n)]
        for future in futures:
            future.result(timeout=120)  # re-raises a worker's exception here
    got = store.get_endpoint("counter")
    assert got is not None and got.spec["counter"] == threads_n * per_thread


def test_endpoints_in(store: Store) -> None:
    records = populate(store, ENDPOINT)
    wanted = {"Creating", "Updating", "Deleting"}
    got = store.endpoints_in(sorted(wanted))
    expected = sorted((r for r in records if r.status in wanted), key=SORT_KEYS["CreationTime"])
    assert got == expected and got
    assert store.endpoints_in([]) == []
    assert store.endpoints_in(["Nothing"]) == []


# -- list: filters --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_list_without_filters_returns_everything_newest_first(store: Store, kind: Kind) -> None:
    records = populate(store, kind)
    newest_first = sorted(records, key=SORT_KEYS["CreationTime"], reverse=True)
    assert list_all(store, kind) == newest_first
    page, token = kind.list(store, ResourceQuery())
    assert page == newest_first[:10] and token is not None  # max_results defaults to 10


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_list_of_nothing(store: Store, kind: Kind) -> None:
    assert kind.list(store, ResourceQuery()) == ([], None)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_name_contains_is_a_case_insensitive_literal_substring(store: Store, kind: Kind) -> None:
    records = populate(store, kind)
    got = list_all(store, kind, name_contains="ALPHA")
    assert sorted(names(got)) == sorted(r.name for r in records if "alpha" in r.name.lower())
    got = list_all(store, kind, name_contains="eta-0", sort_by="Name", sort_order="Ascending")
    assert names(got) == ["beta-00", "beta-02", "beta-04", "beta-06", "beta-08"]
    assert list_all(store, kind, name_contains="zzz") == []
    kind.insert(store, kind.make("has_underscore"))
    kind.insert(store, kind.make("has%percent"))
    assert names(list_all(store, kind, name_contains="_")) == ["has_underscore"]
    assert names(list_all(store, kind, name_contains="%")) == ["has%percent"]


BOUNDS: list[tuple[str, str, Callable[[float, float], bool]]] = [
    ("creation_time_after", "creation_time", lambda v, b: v > b),
    ("creation_time_before", "creation_time", lambda v, b: v < b),
]
ENDPOINT_BOUNDS: list[tuple[str, str, Callable[[float, float], bool]]] = [
    ("last_modified_time_after", "last_modified_time", lambda v, b: v > b),
    ("last_modified_time_before", "last_modified_time", lambda v, b: v < b),
]


@pytest.mark.parametrize(
    ("kind", "field", "attribute", "compare"),
    [(k, *b) for k in KINDS for b in BOUNDS] + [(ENDPOINT, *b) for b in ENDPOINT_BOUNDS],
    ids=lambda v: str(v) if isinstance(v, Kind | str) else "",
)
def test_time_bounds_are_strict(
    store: Store, kind: Kind, field: str, attribute: str, compare: Callable[[float, float], bool]
) -> None:
    records = populate(store, kind)
    values = sorted({getattr(r, attribute) for r in records})
    # Each existing value is a bound (strictness), plus bounds outside the range.
    for bound in [values[0] - 1, *values, values[-1] + 1]:
        got = list_all(store, kind, **{field: bound})
        expected = [r.name for r in records if compare(getattr(r, attribute), bound)]
        assert sorted(names(got)) == sorted(expected), (field, bound)


def test_endpoint_status_equals(store: Store) -> None:
    records = populate(store, ENDPOINT)
    for status in ENDPOINT_STATUSES:
        got = list_all(store, ENDPOINT, status_equals=status)
        assert got and sorted(names(got)) == sorted(r.name for r in records if r.status == status)
    assert list_all(store, ENDPOINT, status_equals="NoSuchStatus") == []


def test_endpoint_filters_combine(store: Store) -> None:
    records = populate(store, ENDPOINT)
    query: dict[str, Any] = {
        "name_contains": "alpha",
        "status_equals": "InService",
        "creation_time_after": 1000.0,
        "last_modified_time_before": 2006.0,
    }
    expected = [
        r.name
        for r in records
        if "alpha" in r.name.lower()
        and r.status == "InService"
        and r.creation_time > 1000.0
        and r.last_modified_time < 2006.0
    ]
    assert expected == ["Alpha-07"]  # Alpha-01 matches all but the strict creation bound
    assert names(list_all(store, ENDPOINT, **query)) == expected


@pytest.mark.parametrize("kind", [MODEL, CONFIG], ids=str)
@pytest.mark.parametrize(
    "query",
    [
        {"sort_by": "Status"},
        {"status_equals": "InService"},
        {"last_modified_time_after": 1.0},
        {"last_modified_time_before": 1.0},
    ],
    ids=lambda q: next(iter(q)),
)
def test_endpoint_only_filters_and_sorts_are_refused_elsewhere(
    store: Store, kind: Kind, query: dict[str, Any]
) -> None:
    populate(store, kind)
    with pytest.raises(ValueError):
        kind.list(store, ResourceQuery(**query))


@pytest.mark.parametrize("kind", KINDS, ids=str)
@pytest.mark.parametrize("query", [{"sort_by": "Bogus"}, {"sort_order": "Sideways"}, {"max_results": 0}])
def test_bad_queries_are_value_errors(store: Store, kind: Kind, query: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        kind.list(store, ResourceQuery(**query))


# -- list: sorting and pagination -----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "sort_by"), SORTED_KINDS, ids=str)
@pytest.mark.parametrize("sort_order", ["Ascending", "Descending"])
def test_sort_orders(store: Store, kind: Kind, sort_by: str, sort_order: str) -> None:
    records = populate(store, kind)
    got = list_all(store, kind, sort_by=sort_by, sort_order=sort_order)
    expected = sorted(records, key=SORT_KEYS[sort_by], reverse=sort_order == "Descending")
    assert names(got) == names(expected)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_name_sort_is_bytewise_on_every_backend(store: Store, kind: Kind) -> None:
    # A natural-language collation would order these by letters only, ignoring the hyphen.
    spellings = ["ab", "a-c", "aa", "a-b", "a0", "A-a"]
    for name in spellings:
        kind.insert(store, kind.make(name))
    got = names(list_all(store, kind, sort_by="Name", sort_order="Ascending"))
    assert got == sorted(spellings, key=str.lower)


def walk(store: Store, kind: Kind, page_size: int, token: str | None = None, **query: Any) -> list[Any]:
    """Every page from ``token`` (None: the first page) on, checking the page sizes."""
    seen: list[Any] = []
    for _ in range(100):
        page, token = kind.list(store, ResourceQuery(max_results=page_size, next_token=token, **query))
        seen.extend(page)
        if token is None:
            assert 0 < len(page) <= page_size
            return seen
        assert len(page) == page_size
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("page_size", [1, 3])
@pytest.mark.parametrize(("kind", "sort_by"), SORTED_KINDS, ids=str)
@pytest.mark.parametrize("sort_order", ["Ascending", "Descending"])
def test_pagination_walks_every_row_once(
    store: Store, kind: Kind, sort_by: str, sort_order: str, page_size: int
) -> None:
    records = populate(store, kind)
    seen = walk(store, kind, page_size, sort_by=sort_by, sort_order=sort_order)
    expected = sorted(records, key=SORT_KEYS[sort_by], reverse=sort_order == "Descending")
    assert names(seen) == names(expected)
    assert len({r.name for r in seen}) == len(records)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_pagination_with_a_filter_and_changes_between_pages(store: Store, kind: Kind) -> None:
    records = populate(store, kind)
    first, token = kind.list(
        store, ResourceQuery(max_results=2, name_contains="beta", sort_by="Name", sort_order="Ascending")
    )
    # Rows created or deleted before the cursor must not shift the next page.
    kind.insert(store, kind.make("beta-000"))
    assert kind.delete(store, "beta-00")
    rest = walk(store, kind, 2, name_contains="beta", sort_by="Name", sort_order="Ascending", token=token)
    betas = sorted(r.name for r in records if "beta" in r.name)
    assert names(first) == betas[:2]
    assert names(rest) == betas[2:]


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _keyed(table: str, sort_by: str, key: str) -> str:
    return _token(f'{{"t":"{table}","s":"{sort_by}","o":"Descending","k":{key}}}')


@pytest.mark.parametrize("kind", KINDS, ids=str)
@pytest.mark.parametrize(
    "make_token",
    [
        lambda table: "not a token!",
        lambda table: "",
        lambda table: "tökén",
        lambda table: _token('"a string"'),
        lambda table: _token('{"s":"CreationTime","o":"Descending","k":[1.0,"a"]}'),  # names no table
        lambda table: _keyed(table, "CreationTime", '["x","y"]'),
        lambda table: _keyed(table, "CreationTime", '[true,"y"]'),
        lambda table: _keyed(table, "CreationTime", "[1.0]"),
        lambda table: _keyed(table, "CreationTime", '[1.0,"a","b"]'),
        lambda table: _keyed(table, "CreationTime", '[NaN,"a"]'),
        lambda table: _keyed(table, "CreationTime", '[Infinity,"a"]'),
        lambda table: _keyed(table, "CreationTime", f'[1{"0" * 400},"a"]'),
        lambda table: _keyed(table, "Name", '["a"]'),  # from another sort
        lambda table: _keyed(table, "CreationTime", '"not a list"'),
    ],
)
def test_invalid_token(store: Store, kind: Kind, make_token: Callable[[str], str]) -> None:
    populate(store, kind)
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        kind.list(store, ResourceQuery(next_token=make_token(kind.table)))


def test_a_well_formed_token_resumes(store: Store) -> None:
    records = populate(store, MODEL)
    token = _keyed("models", "CreationTime", '[1002,"beta-07"]')  # an int time is accepted too
    got, next_token = MODEL.list(store, ResourceQuery(max_results=100, next_token=token))
    newest_first = sorted(records, key=SORT_KEYS["CreationTime"], reverse=True)
    assert got == [r for r in newest_first if SORT_KEYS["CreationTime"](r) < (1002.0, "beta-07")]
    assert len(got) == 8 and next_token is None


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_token_from_another_resource_type_or_sort_is_invalid(store: Store, kind: Kind) -> None:
    for k in KINDS:
        populate(store, k)
    for name in ("job-1", "job-2"):
        store.insert_training_job(
            TrainingJobRecord(
                name=name,
                arn=f"{ARN_PREFIX}:training-job/{name}",
                status="InProgress",
                secondary_status="Starting",
                creation_time=1.0,
                last_modified_time=1.0,
                spec={},
            )
        )
    foreign = [store.list_training_jobs(TrainingJobQuery(max_results=1))[1]]
    foreign += [other.list(store, ResourceQuery(max_results=1))[1] for other in KINDS if other is not kind]
    for token in foreign:
        assert token is not None
        with pytest.raises(ValueError, match="^Invalid pagination token$"):
            kind.list(store, ResourceQuery(max_results=1, next_token=token))
    _, own = kind.list(store, ResourceQuery(max_results=1, sort_by="Name"))
    with pytest.raises(ValueError, match="^Invalid pagination token$"):
        kind.list(store, ResourceQuery(max_results=1, sort_by="CreationTime", next_token=own))


# -- tags -----------------------------------------------------------------------------------------


def test_delete_all_tags(store: Store) -> None:
    arn, other = f"{ARN_PREFIX}:model/tagged", f"{ARN_PREFIX}:model/other"
    store.add_tags(arn, [("a", "1"), ("b", "2")])
    store.add_tags(other, [("a", "1")])
    store.delete_all_tags(arn)
    assert store.list_tags(arn) == []
    assert store.list_tags(other) == [("a", "1")]
    store.delete_all_tags(arn)  # nothing left: a no-op
    store.delete_all_tags(f"{ARN_PREFIX}:model/never-tagged")
    assert store.count_tags(other) == 1


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


HOSTING_TABLES = {"models", "endpoint_configs", "endpoints"}


def test_migration_from_0001_to_0002_keeps_training_jobs(store_url: str) -> None:
    config = alembic_config(store_url)
    command.upgrade(config, "0001")
    job = TrainingJobRecord(
        name="Old-Job",
        arn=f"{ARN_PREFIX}:training-job/old-job",
        status="Completed",
        secondary_status="Completed",
        creation_time=1_700_000_000.5,
        last_modified_time=1_700_000_100.5,
        spec={"HyperParameters": {"a": "1"}},
        final_metrics=[{"MetricName": "loss", "Value": 0.25}],
    )
    with Store(store_url) as s:
        tables, version = _tables_and_version(s)
        assert version == "0001" and not tables & HOSTING_TABLES
        s.insert_training_job(job)
        s.add_tags(job.arn, [("k", "v")])

        command.upgrade(config, "0002")
        tables, version = _tables_and_version(s)
        assert version == "0002" and tables >= HOSTING_TABLES
        assert s.get_training_job("old-job") == job
        assert s.list_tags(job.arn) == [("k", "v")]
        s.insert_model(model("New-Model"))
        s.insert_endpoint_config(endpoint_config("New-Config"))
        s.insert_endpoint(endpoint("New-Endpoint"))
        assert s.get_endpoint("new-endpoint") is not None

        # And back: the downgrade drops only what 0002 added.
        command.downgrade(config, "0001")
        tables, version = _tables_and_version(s)
        assert version == "0001" and not tables & HOSTING_TABLES
        assert s.get_training_job("old-job") == job

        s.migrate()  # to head again
        assert s.get_model("new-model") is None
        assert s.get_training_job("old-job") == job


def test_head_schema_matches_the_schema_module(store: Store) -> None:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []
    tables, version = _tables_and_version(store)
    assert version == head
    assert tables >= HOSTING_TABLES


@pytest.mark.parametrize(
    ("table", "record"),
    [("models", ModelRecord), ("endpoint_configs", EndpointConfigRecord), ("endpoints", EndpointRecord)],
)
def test_record_fields_all_have_columns(table: str, record: type[Any]) -> None:
    columns = set(metadata.tables[table].c.keys())
    assert {f.name for f in dataclasses.fields(record)} | {"name_key"} == columns
