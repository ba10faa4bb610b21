"""A Rich progress bar for a transform job, drawn from ``GET /_homeport/transform-jobs/{name}``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from homeport.cli.exit_codes import STATUS_EXIT, ExitCode, fail

TERMINAL = {"Completed", "Failed", "Stopped"}
EXIT_CODES = {status: int(code) for status, code in STATUS_EXIT.items()}


def _fetch(endpoint_url: str, job: str) -> dict[str, Any] | None:
    url = f"{endpoint_url.rstrip('/')}/_homeport/transform-jobs/{urllib.parse.quote(job)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            doc: dict[str, Any] = json.load(response)
            return doc
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    except urllib.error.URLError as exc:
        fail("ServerUnreachable", f"{endpoint_url}: {exc.reason}", ExitCode.UNREACHABLE)


def follow_transform(endpoint_url: str, job: str, poll: float = 0.5, quiet: bool = False) -> int:
    """Show progress until the job ends; returns the exit code for its final status."""
    console = Console(stderr=True)
    state = _fetch(endpoint_url, job)
    if state is None:
        fail("ValidationException", f"Could not find requested job with name {job}", ExitCode.NOT_FOUND)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[records]} records"),
    )
    with Progress(*columns, console=console, disable=quiet) as bar:
        task = bar.add_task(f"{job} objects", total=None, records=0)
        while True:
            bar.update(
                task,
                total=state.get("ObjectsTotal") or None,
                completed=state.get("ObjectsDone", 0),
                records=state.get("RecordsDone", 0),
            )
            if state["TransformJobStatus"] in TERMINAL:
                break
            time.sleep(poll)
            state = _fetch(endpoint_url, job) or state
    status = state["TransformJobStatus"]
    if not quiet:
        reason = f" — {state['FailureReason']}" if state.get("FailureReason") else ""
        console.print(f"{job}: {status}{reason}", highlight=False)
    return EXIT_CODES.get(status, int(ExitCode.FAILED))
