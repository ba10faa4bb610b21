"""The members every List* operation shares (name, status and time filters, sort, paging)."""

from __future__ import annotations

from typing import Any, TypeVar

from homeport.api.timestamps import parse_timestamp
from homeport.store.records import ResourceQuery, TrainingJobQuery

Query = TypeVar("Query", TrainingJobQuery, ResourceQuery)


def list_query(query_type: type[Query], params: dict[str, Any]) -> Query:
    def ts(member: str) -> float | None:
        return parse_timestamp(params[member], member) if member in params else None

    return query_type(
        name_contains=params.get("NameContains"),
        status_equals=params.get("StatusEquals"),
        creation_time_after=ts("CreationTimeAfter"),
        creation_time_before=ts("CreationTimeBefore"),
        last_modified_time_after=ts("LastModifiedTimeAfter"),
        last_modified_time_before=ts("LastModifiedTimeBefore"),
        sort_by=params.get("SortBy", "CreationTime"),
        sort_order=params.get("SortOrder", "Descending"),
        max_results=int(params.get("MaxResults", 10)),
        next_token=params.get("NextToken"),
    )
