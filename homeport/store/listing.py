"""Filtered, sorted, keyset-paginated listing shared by the store's List* methods.

Every listed table has ``name_key`` (lower-cased name, the primary key) and ``creation_time``;
some also have ``status`` and ``last_modified_time``. A page is read in (sort column,
``name_key``) order and the next-page token carries the last row's values of those columns, so
pages neither repeat nor skip rows when rows are created or deleted between requests. A token
names the table, sort and order it came from and is refused anywhere else.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Protocol

import sqlalchemy as sa

INVALID_TOKEN = "Invalid pagination token"
SORT_ORDERS = ("Ascending", "Descending")
# SortBy values (the same words in every List* operation) and the column each sorts on.
_SORT_COLUMNS = {"Name": "name_key", "CreationTime": "creation_time", "Status": "status"}


class ListQuery(Protocol):
    """The filters every List* query record has (TrainingJobQuery, also used by ListTransformJobs,
    and ResourceQuery); read-only."""

    @property
    def name_contains(self) -> str | None: ...
    @property
    def status_equals(self) -> str | None: ...
    @property
    def creation_time_after(self) -> float | None: ...
    @property
    def creation_time_before(self) -> float | None: ...
    @property
    def last_modified_time_after(self) -> float | None: ...
    @property
    def last_modified_time_before(self) -> float | None: ...
    @property
    def sort_by(self) -> str: ...
    @property
    def sort_order(self) -> str: ...
    @property
    def max_results(self) -> int: ...
    @property
    def next_token(self) -> str | None: ...


def encode_token(table: str, sort_by: str, sort_order: str, key: list[Any]) -> str:
    payload = json.dumps({"t": table, "s": sort_by, "o": sort_order, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode("ascii")


def _key_value(value: Any, column: sa.Column[Any]) -> Any:
    """``value`` checked against the column it resumes on; ValueError when it cannot be one."""
    if isinstance(column.type, sa.Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(INVALID_TOKEN)
        try:
            number = float(value)  # an int as big as 10**400 is no time
        except OverflowError as exc:
            raise ValueError(INVALID_TOKEN) from exc
        # json.loads accepts NaN and Infinity, which no stored time is and which compare
        # differently on the two backends.
        if not math.isfinite(number):
            raise ValueError(INVALID_TOKEN)
        return number
    if not isinstance(value, str):
        raise ValueError(INVALID_TOKEN)
    return value


def decode_token(
    token: str, table: str, sort_by: str, sort_order: str, keyset: list[sa.Column[Any]]
) -> list[Any]:
    """The keyset a token resumes after; ValueError unless it came from the same table and sort."""
    try:
        payload = json.loads(base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ValueError(INVALID_TOKEN) from exc
    if (
        not isinstance(payload, dict)
        or payload.get("t") != table
        or payload.get("s") != sort_by
        or payload.get("o") != sort_order
    ):
        raise ValueError(INVALID_TOKEN)
    key = payload.get("k")
    if not isinstance(key, list) or len(key) != len(keyset):
        raise ValueError(INVALID_TOKEN)
    return [_key_value(v, c) for v, c in zip(key, keyset, strict=True)]


def _column(table: sa.Table, name: str, what: str) -> sa.Column[Any]:
    if name not in table.c:
        raise ValueError(f"{table.name} cannot be {what}")
    return table.c[name]


def list_page(conn: sa.Connection, table: sa.Table, q: ListQuery) -> tuple[list[sa.RowMapping], str | None]:
    """One page of ``table``'s rows matching ``q`` and the token of the next page (None on the last).

    ValueError for a sort or filter the table has no column for, a bad ``max_results`` and a
    token that is not this listing's (``INVALID_TOKEN``, the message clients see).
    """
    column_name = _SORT_COLUMNS.get(q.sort_by)
    if column_name is None or column_name not in table.c:
        raise ValueError(f"Unknown sort_by: {q.sort_by}")
    if q.sort_order not in SORT_ORDERS:
        raise ValueError(f"Unknown sort_order: {q.sort_order}")
    if q.max_results < 1:
        raise ValueError("max_results must be at least 1")
    name_key = table.c.name_key
    column = table.c[column_name]
    # name_key breaks ties, which makes the order total: the keyset identifies one position.
    keyset = [column] if column is name_key else [column, name_key]
    descending = q.sort_order == "Descending"

    conditions: list[sa.ColumnElement[bool]] = []
    if q.name_contains:
        conditions.append(name_key.contains(q.name_contains.lower(), autoescape=True))
    if q.status_equals is not None:
        conditions.append(_column(table, "status", "filtered by status") == q.status_equals)
    bounds = (
        ("creation_time", q.creation_time_after, q.creation_time_before),
        ("last_modified_time", q.last_modified_time_after, q.last_modified_time_before),
    )
    for name, after, before in bounds:
        if after is None and before is None:
            continue
        col = _column(table, name, f"filtered by {name}")
        if after is not None:
            conditions.append(col > after)
        if before is not None:
            conditions.append(col < before)
    if q.next_token is not None:
        resume = decode_token(q.next_token, table.name, q.sort_by, q.sort_order, keyset)
        left = sa.tuple_(*keyset) if len(keyset) > 1 else keyset[0]
        right = sa.tuple_(*[sa.literal(v) for v in resume]) if len(keyset) > 1 else resume[0]
        conditions.append(left < right if descending else left > right)

    order = [c.desc() if descending else c.asc() for c in keyset]
    stmt = sa.select(table).where(*conditions).order_by(*order).limit(q.max_results + 1)
    rows = list(conn.execute(stmt).mappings().all())
    if len(rows) <= q.max_results:
        return rows, None
    last = rows[q.max_results - 1]
    token = encode_token(table.name, q.sort_by, q.sort_order, [last[c.name] for c in keyset])
    return rows[: q.max_results], token
