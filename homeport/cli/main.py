"""``homeport``: run the server, manage local images, copy data in and out; and, as a thin client
over the server's own AWS APIs (boto3 with ``--endpoint-url``), train, deploy, invoke,
batch-transform, list, describe, stop and remove resources and read their logs.

Client commands live in one module per concept (``training``, ``hosting``, ``transform``,
``listing``, ``lifecycle``, ``logs_client``); their exit codes are in ``exit_codes``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from homeport.cli.export import export
from homeport.config import Settings, default_home

app = typer.Typer(
    help="Homeport: a self-hosted home for SageMaker-style machine learning.\n\n"
    "Client commands reach the server at --endpoint-url / $HOMEPORT_URL (default "
    "http://127.0.0.1:8643). Exit codes: 0 ok, 1 failed, 2 usage/validation, 3 stopped, "
    "4 not found, 5 server unreachable, 6 conflict (docs/cli.md).",
    no_args_is_help=True,
)
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data dir (default: $HOMEPORT_HOME or ~/.homeport).", show_default=False),
]


def _image_app() -> typer.Typer:
    from homeport.cli.images import app as images

    return images


app.add_typer(_image_app(), name="image")


app.command(name="export")(export)


def _client_commands() -> None:
    from homeport.cli.hosting import deploy, invoke
    from homeport.cli.lifecycle import rm, stop
    from homeport.cli.listing import describe_cmd, ls
    from homeport.cli.logs_client import logs
    from homeport.cli.training import train
    from homeport.cli.transform import transform

    app.command()(train)
    app.command()(deploy)
    app.command()(invoke)
    app.command()(transform)
    app.command()(logs)
    app.command()(ls)
    app.command(name="describe")(describe_cmd)
    app.command()(stop)
    app.command()(rm)


_client_commands()


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8643,
    data_dir: DataDir = None,
    runtime: Annotated[
        str,
        typer.Option(
            help="How images run: process (folders in Linux namespaces) or docker (engine images "
            "through DOCKER_HOST: Docker Engine or Podman)."
        ),
    ] = "process",
    container_network: Annotated[
        str,
        typer.Option(
            help="docker runtime: how serving containers are reached: netns (enter their network "
            "namespace; root), ports (publish 8080 on 127.0.0.1) or auto."
        ),
    ] = "auto",
    gpus: Annotated[
        str,
        typer.Option(
            help="docker runtime: GPU instance types get NVIDIA GPUs: auto (when the host has them), on, off."
        ),
    ] = "auto",
    database_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the metadata store (default: SQLite in the data dir)."),
    ] = None,
    object_store: Annotated[str, typer.Option(help="local (a folder in the data dir) or s3.")] = "local",
    s3_endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint for --object-store s3.")
    ] = None,
    region: Annotated[str, typer.Option(help="Region written into ARNs.")] = "us-east-1",
    account: Annotated[str, typer.Option(help="Account id written into ARNs.")] = "123456789012",
    max_concurrent_jobs: Annotated[int, typer.Option(help="Training jobs run at once; more wait.")] = 4,
    stop_grace: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL on stop.")] = 120.0,
    compression_level: Annotated[int, typer.Option(help="gzip level of model.tar.gz.", min=0, max=9)] = 6,
    instance_stop_grace: Annotated[
        float, typer.Option(help="Seconds between SIGTERM and SIGKILL when an endpoint instance stops.")
    ] = 30.0,
    health_check_interval: Annotated[
        float, typer.Option(help="Seconds between /ping checks of instances.")
    ] = 2.0,
) -> None:
    """Run the Homeport server (SageMaker API on POST /)."""
    from homeport.errors import RuntimeUnavailable
    from homeport.server import DataDirBusy, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(
        data_dir=(data_dir or default_home()).expanduser().resolve(),
        host=host,
        port=port,
        runtime=runtime,
        container_network=container_network,
        gpus=gpus,
        database_url=database_url,
        object_store=object_store,
        s3_endpoint_url=s3_endpoint_url,
        region=region,
        account=account,
        max_concurrent_jobs=max_concurrent_jobs,
        stop_grace_seconds=stop_grace,
        compression_level=compression_level,
        instance_stop_grace_seconds=instance_stop_grace,
        health_check_seconds=health_check_interval,
    )
    try:
        err.print(f"Homeport on http://{host}:{port} (data dir {settings.data_dir}, runtime {runtime})")
        serve(settings)
    except (RuntimeUnavailable, DataDirBusy, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def cp(
    src: Annotated[str, typer.Argument(help="Local path or s3://bucket/key.")],
    dst: Annotated[str, typer.Argument(help="Local path or s3://bucket/key.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Copy a folder or prefix.")] = False,
    data_dir: DataDir = None,
    object_store: Annotated[str, typer.Option(help="local or s3 (must match the server).")] = "local",
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint for s3.")] = None,
) -> None:
    """Copy files between local paths and s3:// URIs of the configured object store."""
    from homeport.errors import HomeportError
    from homeport.storage.base import S3Uri
    from homeport.storage.factory import open_object_store
    from homeport.storage.transfer import copy

    settings = Settings(data_dir=(data_dir or default_home()).expanduser())
    store = open_object_store(object_store, settings.objects_dir, s3_endpoint_url, settings.region)
    if dst.startswith("s3://"):
        # The embedded store has no other way to make a bucket yet: create the target bucket.
        bucket = S3Uri.parse(dst).bucket
        if not store.bucket_exists(bucket):
            store.create_bucket(bucket)
    try:
        copied = copy(src, dst, store, recursive=recursive)
    except (HomeportError, ValueError, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    for a, b in copied:
        typer.echo(f"copy: {a} to {b}")
    if not copied:
        err.print("nothing to copy")
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
