"""``homeport export``: a model as a self-contained folder that serves it anywhere (``--format onnx``).

The model is looked up through the running server's SageMaker API (DescribeModel, boto3) and
its model data read from the object store the way ``homeport cp`` reads it (the data dir's
local store, or ``--object-store s3``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from homeport.config import Settings, default_home

# Typer exit codes: 2 = the command line or its input is wrong, 1 = it was right but failed.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
FORMATS = ("onnx",)
DEFAULT_URL = "http://127.0.0.1:8643"

err = Console(stderr=True)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)  # paths stay copyable
    raise typer.Exit(code)


def export(
    model_name: Annotated[str, typer.Argument(help="The model's name (CreateModel's ModelName).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write; must be absent or empty (see --force).")
    ],
    format: Annotated[  # noqa: A002 - the option is --format
        str, typer.Option("--format", help="What to export: onnx (model.onnx and a standalone server).")
    ] = "onnx",
    endpoint_url: Annotated[
        str, typer.Option(envvar="HOMEPORT_URL", help="The Homeport server (or $HOMEPORT_URL).")
    ] = DEFAULT_URL,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Data dir (default: $HOMEPORT_HOME or ~/.homeport).", show_default=False
        ),
    ] = None,
    object_store: Annotated[str, typer.Option(help="local or s3 (must match the server).")] = "local",
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint for s3.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty --out.")] = False,
) -> None:
    """Export a model as a folder that serves it anywhere: model.onnx, server.py, Dockerfile, README."""
    from homeport.errors import HomeportError
    from homeport.export.onnx_bundle import (
        ExportError,
        check_out_dir,
        fetch_model_onnx,
        model_container,
        write_bundle,
    )
    from homeport.hosting.model_data import ModelDataError
    from homeport.storage.factory import open_object_store

    if format not in FORMATS:
        _fail(f"unknown format {format!r}; expected one of: {', '.join(FORMATS)}", EXIT_BAD_INPUT)
    out = out.expanduser().resolve()
    try:
        check_out_dir(out, force)
        description = _describe_model(endpoint_url, model_name)
        container = model_container(model_name, description)
        settings = Settings(data_dir=(data_dir or default_home()).expanduser())
        store = open_object_store(object_store, settings.objects_dir, s3_endpoint_url, settings.region)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Next to the output: the same filesystem, and no size limit of a tmpfs /tmp.
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".homeport-export-") as work:
            with err.status(f"Fetching the model data of {escape(model_name)}"):
                model_onnx = fetch_model_onnx(model_name, container, store, Path(work))
            model_data = str(container.get("ModelDataUrl") or _source_uri(container))
            written = write_bundle(model_onnx, out, model_name, model_data)
    except (ExportError, ModelDataError) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except (HomeportError, ValueError, OSError) as exc:
        _fail(str(exc), EXIT_FAILED)
    _report(model_name, model_data, out, written)


def _source_uri(container: dict[str, Any]) -> str:
    source = container.get("ModelDataSource") or {}
    return str(source.get("S3DataSource", {}).get("S3Uri", ""))


def _describe_model(endpoint_url: str, model_name: str) -> dict[str, Any]:
    """DescribeModel through the server's SageMaker API; exits 2 with the API's message on an error."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "sagemaker",
        endpoint_url=endpoint_url,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        # Homeport accepts any credentials: placeholders spare boto3 its credential-chain search.
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "homeport"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "homeport"),
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60),
    )
    try:
        description: dict[str, Any] = client.describe_model(ModelName=model_name)
    except ClientError as exc:
        _fail(exc.response.get("Error", {}).get("Message") or str(exc), EXIT_BAD_INPUT)
    except BotoCoreError as exc:
        _fail(f"cannot reach Homeport at {endpoint_url} (is `homeport server` running?): {exc}", EXIT_FAILED)
    return description


def _report(model_name: str, model_data: str, out: Path, written: list[Path]) -> None:
    from homeport.export.onnx_bundle import image_name

    console = Console()
    folder, image = escape(str(out)), image_name(model_name)
    console.print(f"[green]Exported[/green] {escape(model_name)} ({escape(model_data)}) to [bold]{folder}[/]")
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column()
    table.add_column(justify="right")
    for path in written:
        table.add_row(escape(path.name), f"{path.stat().st_size:,} bytes")
    console.print(table)
    console.print("Serve it (GET /ping, POST /invocations on port 8080):")
    console.print(
        f"  cd {folder} && python3 -m venv .venv && .venv/bin/pip install -r requirements.txt "
        "&& .venv/bin/python server.py",
        soft_wrap=True,
    )
    docker = f"  docker build -t {image} {folder} && docker run --rm -p 8080:8080 {image}"
    console.print(docker, soft_wrap=True)
    console.print("SageMaker and other clouds: see README.md there.")
