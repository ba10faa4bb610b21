"""``homeport stop KIND NAME`` (training and transform jobs) and ``homeport rm KIND NAME``
(endpoints, endpoint configs, models; ``rm endpoint NAME --all-related`` also removes its
endpoint config and the models it names)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError

from homeport.cli.client import Clients, EndpointUrl, JsonFlag
from homeport.cli.exit_codes import cli_errors, usage
from homeport.cli.listing import KindArg
from homeport.cli.logs_client import TERMINAL
from homeport.cli.output import err, print_json, status_text
from homeport.cli.resources import Kind, describe, kind

Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is over.")]


def _wait_until(sm: Any, k: Kind, name: str, done: set[str], poll: float = 0.5) -> dict[str, Any]:
    assert k.status_key is not None
    while True:
        doc = describe(sm, k, name)
        if doc[k.status_key] in done:
            return doc
        time.sleep(poll)


@cli_errors
def stop(
    what: KindArg,
    name: Annotated[str, typer.Argument(help="Job name.", show_default=False)],
    wait: Wait = False,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Stop a training job or a transform job (Stopping → Stopped); --wait until it has ended."""
    k = kind(what)
    if not k.stoppable:
        raise usage(f"only training jobs and transform jobs can be stopped, not a {k.name}")
    sm = Clients.for_url(endpoint_url).sagemaker
    getattr(sm, k.op("stop"))(**{k.name_param: name})
    doc = _wait_until(sm, k, name, TERMINAL) if wait else describe(sm, k, name)
    assert k.status_key is not None
    if json_out:
        print_json(doc)
    else:
        err.print(f"{k.name} [bold]{name}[/bold]: {status_text(str(doc[k.status_key]))}")


def _wait_gone(sm: Any, k: Kind, name: str, poll: float = 0.5) -> None:
    with err.status(f"deleting {k.name} {name}"):
        while True:
            try:
                describe(sm, k, name)
            except ClientError:
                return
            time.sleep(poll)


@cli_errors
def rm(
    what: KindArg,
    name: Annotated[str, typer.Argument(help="Resource name.", show_default=False)],
    all_related: Annotated[
        bool, typer.Option("--all-related", help="endpoint: also remove its endpoint config and models.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="endpoint: wait until its instances are gone.")
    ] = True,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Remove an endpoint, an endpoint config or a model."""
    k = kind(what)
    if not k.removable:
        raise usage(f"a {k.name} cannot be removed (stop it instead); rm takes endpoints, configs, models")
    if all_related and k.name != "endpoint":
        raise usage("--all-related goes with rm endpoint")
    sm = Clients.for_url(endpoint_url).sagemaker
    removed: list[dict[str, str]] = []
    related: list[tuple[Kind, str]] = []
    if all_related:
        config_name = describe(sm, k, name)["EndpointConfigName"]
        related.append((kind("endpoint-config"), config_name))
        try:
            config = sm.describe_endpoint_config(EndpointConfigName=config_name)
            models = dict.fromkeys(v["ModelName"] for v in config.get("ProductionVariants", []))
            related.extend((kind("model"), m) for m in models)
        except ClientError:
            pass  # the config is gone already: nothing more to find
    getattr(sm, k.op("delete"))(**{k.name_param: name})
    removed.append({"Kind": k.name, "Name": name})
    if k.name == "endpoint" and wait:
        _wait_gone(sm, k, name)
    for other, other_name in related:
        try:
            getattr(sm, other.op("delete"))(**{other.name_param: other_name})
            removed.append({"Kind": other.name, "Name": other_name})
        except ClientError as exc:
            err.print(f"kept {other.name} {other_name}: {exc.response.get('Error', {}).get('Message', exc)}")
    if json_out:
        print_json({"Removed": removed})
    else:
        for item in removed:
            err.print(f"removed {item['Kind']} {item['Name']}")
