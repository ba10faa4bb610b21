"""``homeport ls KIND`` and ``homeport describe KIND NAME``: List* pages and Describe* answers."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from homeport.cli.client import Clients, EndpointUrl, JsonFlag
from homeport.cli.exit_codes import cli_errors
from homeport.cli.output import print_document, print_json, print_table
from homeport.cli.resources import KIND_HELP, Kind, describe, kind

KindArg = Annotated[str, typer.Argument(help=KIND_HELP, show_default=False)]


def list_all(
    sm: Any,
    k: Kind,
    name_contains: str | None,
    status: str | None,
    limit: int | None,
    page_size: int | None = None,
) -> list[Any]:
    """Every summary, newest first, following NextToken through boto3's paginator."""
    params: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    if name_contains:
        params["NameContains"] = name_contains
    if status:
        params["StatusEquals"] = status
    paging: dict[str, int] = {}
    if limit:
        paging["MaxItems"] = limit
    if page_size:
        paging["PageSize"] = page_size
    if paging:
        params["PaginationConfig"] = paging
    summaries: list[Any] = []
    for page in sm.get_paginator(k.list_op).paginate(**params):
        summaries.extend(page.get(k.list_key, []))
    return summaries


@cli_errors
def ls(
    what: KindArg,
    name_contains: Annotated[str | None, typer.Option(help="Only names containing this.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only this status (jobs, endpoints, transforms).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many (newest first).", min=1)] = None,
    page_size: Annotated[
        int | None, typer.Option(help="Results per List* request (MaxResults).", min=1, max=100)
    ] = None,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """List training jobs, endpoints, endpoint configs, models or transform jobs."""
    k = kind(what)
    if status and not k.filters_status:
        raise typer.BadParameter(f"{k.name}s have no status", param_hint="--status")
    summaries = list_all(Clients.for_url(endpoint_url).sagemaker, k, name_contains, status, limit, page_size)
    if json_out:
        print_json(summaries)
        return
    title = {"training-job": "Training jobs", "transform-job": "Transform jobs"}.get(
        k.name, k.name.replace("-", " ").capitalize() + "s"
    )
    print_table(title, [c[0] for c in k.columns], ([fn(s) for _, fn in k.columns] for s in summaries))


@cli_errors
def describe_cmd(
    what: KindArg,
    name: Annotated[str, typer.Argument(help="The resource's name.", show_default=False)],
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Show a resource's Describe* answer (training job, endpoint, endpoint config, model, transform)."""
    k = kind(what)
    doc = describe(Clients.for_url(endpoint_url).sagemaker, k, name)
    if json_out:
        print_json(doc)
    else:
        print_document(f"{k.name} {name}", doc)
