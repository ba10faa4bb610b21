"""``homeport image``: add, list and remove local images for the process runtime; build engine
images for the docker runtime."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from homeport.config import Settings
from homeport.errors import HomeportError, ImageNotFound, ValidationException
from homeport.images.model import LocalImage
from homeport.images.registry import DEFAULT_AT, DEFAULT_TAG, ImageRegistry, split_reference
from homeport.images.venvs import VenvCache

app = typer.Typer(
    help="Manage images: folders for the process runtime (add, ls, rm), engine images for the docker "
    "runtime (build).",
    no_args_is_help=True,
)

# Typer exit codes: 2 = the command line or its input is wrong, 1 = it was right but failed.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Homeport's data folder (default: $HOMEPORT_HOME or ~/.homeport).",
        file_okay=False,
        show_default=False,
    ),
]


def _registry(data_dir: Path | None) -> ImageRegistry:
    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    return ImageRegistry(settings.images_dir, VenvCache(settings.venvs_dir))


def _stdout() -> Console:
    # Built per call so output goes to whatever sys.stdout is now (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> NoReturn:
    _stderr().print(f"[red]Error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--env expects KEY=VALUE, got {pair!r}", EXIT_BAD_INPUT)
        env[key] = value
    return env


def _short_venv(image: LocalImage) -> str:
    return image.venv.name[:12] if image.venv else "-"


def _created(image: LocalImage) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(image.created))


def _as_json(image: LocalImage) -> dict[str, object]:
    return {
        "name": image.name,
        "tag": image.tag,
        "reference": image.reference,
        "at": image.at,
        "workdir": image.workdir,
        "env": image.env,
        "root": str(image.root),
        "venv": str(image.venv) if image.venv else None,
        "created": datetime.fromtimestamp(image.created, UTC).isoformat().replace("+00:00", "Z"),
    }


class _PipProgress:
    """Shows a spinner with pip's latest line, started only if a venv actually gets built."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status: Status | None = None

    def __call__(self, line: str) -> None:
        text = f"Building virtualenv… [dim]{escape(line[:160])}[/dim]"
        if self.status is None:
            self.status = self.console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


@app.command("add")
def add(
    name: Annotated[
        str,
        typer.Argument(metavar="NAME[:tag]", help="Image name, optionally with its tag.", show_default=False),
    ],
    folder: Annotated[
        Path,
        typer.Argument(metavar="FOLDER", help="Folder with the image's files (copied).", show_default=False),
    ],
    at: Annotated[str, typer.Option("--at", help="Where the files appear in the sandbox.")] = DEFAULT_AT,
    requirements: Annotated[
        Path | None,
        typer.Option(
            "--requirements", "-r", metavar="FILE", help="pip requirements file for the image's venv."
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", metavar="KEY=VALUE", help="Set in the sandbox (repeatable).", show_default=False
        ),
    ] = None,
    workdir: Annotated[
        str | None,
        typer.Option("--workdir", metavar="DIR", help="Working directory in the sandbox (default: --at)."),
    ] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help=f"Tag (default {DEFAULT_TAG}).", show_default=False)
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register a copy of FOLDER as image NAME[:tag] (replacing an image of that name and tag)."""
    image_name, image_tag = name, tag or DEFAULT_TAG
    if ":" in name:
        image_name, name_tag = split_reference(name)
        if tag is not None and tag != name_tag:
            _fail(f"Conflicting tags: {name!r} and --tag {tag!r}", EXIT_BAD_INPUT)
        image_tag = name_tag
    variables = _parse_env(env or [])
    progress = _PipProgress(_stderr())
    try:
        image = _registry(data_dir).add(
            image_name,
            folder,
            tag=image_tag,
            at=at,
            requirements=requirements,
            env=variables,
            workdir=workdir,
            progress=progress,
        )
    except ValidationException as exc:
        _fail(exc.message, EXIT_BAD_INPUT)
    except (HomeportError, OSError) as exc:
        _fail(str(exc), EXIT_FAILED)
    finally:
        progress.stop()
    _stdout().print(
        f"Added {escape(image.reference)} (at {escape(image.at)}, venv {_short_venv(image)}, "
        f"from {escape(str(folder))})"
    )


@app.command("ls")
def ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    data_dir: DataDir = None,
) -> None:
    """List local images."""
    images = _registry(data_dir).list()
    out = _stdout()
    if as_json:
        # Plain print: Rich would wrap or colour the JSON.
        typer.echo(json.dumps([_as_json(i) for i in images], indent=2))
        return
    if not images:
        out.print("No local images. Add one with: homeport image add NAME FOLDER")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "TAG", "AT", "VENV", "CREATED"):
        table.add_column(column, no_wrap=True)
    for image in images:
        table.add_row(
            escape(image.name), escape(image.tag), escape(image.at), _short_venv(image), _created(image)
        )
    out.print(table)


@app.command("rm")
def rm(
    reference: Annotated[str, typer.Argument(metavar="NAME[:tag]", help="The image to remove.")],
    data_dir: DataDir = None,
) -> None:
    """Remove a local image (its cached venv is kept for reuse)."""
    try:
        image = _registry(data_dir).remove(reference)
    except ImageNotFound as exc:
        _fail(exc.message, EXIT_FAILED)
    _stdout().print(f"Removed {escape(image.reference)}")


@app.command("build")
def build(
    context: Annotated[
        Path, typer.Argument(help="Build context: a folder with a Dockerfile or a Containerfile.")
    ],
    tag: Annotated[str, typer.Option("--tag", "-t", help="Image name, NAME[:TAG].")],
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "-f", help="Build file inside the context (default: Dockerfile, else Containerfile)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the image ID.")] = False,
    network: Annotated[
        str | None, typer.Option("--network", help="Network of RUN steps, e.g. host (for pip install).")
    ] = None,
) -> None:
    """Build an image for the docker runtime through the engine at DOCKER_HOST (never pulls)."""
    import docker
    import docker.errors

    from homeport.images.engine import BuildFailed, EngineImages

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        _fail(
            f"cannot reach a container engine (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {exc}",
            EXIT_FAILED,
        )
    err = _stderr()
    on_line = None if quiet else (lambda line: err.print(escape(line)))
    try:
        image = EngineImages(client).build(context, tag, file, on_line, network_mode=network)
    except ValidationException as exc:
        _fail(exc.message, EXIT_BAD_INPUT)
    except (BuildFailed, HomeportError) as exc:
        _fail(f"building {tag} failed: {exc}", EXIT_FAILED)
    if quiet:
        _stdout().print(image.id)
    else:
        _stdout().print(f"Built {escape(image.reference)} ({image.id[:19]})")
