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

TERMINAL = {"Completed", "Failed", "Stopped"}
EXIT_CODES = {"Completed": 0, "Stopped": 3, "Failed": 1}


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


def follow_transform(endpoint_url: str, job: str, poll: float = 0.5) -> int:
    """Show progress until the job ends; returns the exit code for its final status."""
    console = Console(stderr=True)
    state = _fetch(endpoint_url, job)
    if state is None:
        console.print(f"[red]error:[/red] no transform job named {job}")
        return 2
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[records]} records"),
    )
    with Progress(*columns, console=console) as bar:
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
    console.print(f"{job}: {status}" + (f" — {state['FailureReason']}" if state.get("FailureReason") else ""))
    return EXIT_CODES.get(status, 1)
