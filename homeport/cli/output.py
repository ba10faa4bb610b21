"""What client commands print: Rich tables and pretty documents for people, JSON for programs.

With ``--json`` stdout holds exactly one JSON document (or JSON Lines for streams) and nothing
else: no colour, no progress; datetimes are ISO 8601. Progress and phases go to stderr.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console

# Diagnostics, progress bars and phase lines: stderr, so stdout stays clean for pipes.
err = Console(stderr=True, highlight=False)


def out() -> Console:
    """A console on the current stdout (looked up each time: test runners swap sys.stdout)."""
    # Not a terminal (a pipe, a file): wide enough that tables are not wrapped at 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width)


def jsonable(value: Any) -> Any:
    """The value with datetimes as ISO 8601, bytes as text (or base64), streams dropped."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value)) + "\n")
    sys.stdout.flush()


def when(value: Any) -> str:
    """A datetime as a short local-time string for tables."""
    if isinstance(value, dt.datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


_STATUS_STYLE = {
    "Completed": "green",
    "InService": "green",
    "Failed": "red",
    "Stopped": "yellow",
    "Stopping": "yellow",
    "InProgress": "cyan",
    "Creating": "cyan",
    "Updating": "cyan",
    "Deleting": "yellow",
}


def status_text(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*row)
        count += 1
    console = out()
    if count:
        console.print(table)
    else:
        console.print(f"no {title.lower()}")
    return count


def print_document(title: str, doc: Mapping[str, Any]) -> None:
    """A Describe* response: scalar members as aligned ``key  value`` lines, the rest as JSON."""
    from rich.json import JSON
    from rich.table import Table

    console = out()
    console.print(f"[bold]{title}[/bold]")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    nested: list[tuple[str, Any]] = []
    for key, value in jsonable(doc).items():
        if isinstance(value, dict | list):
            nested.append((key, value))
        elif key.endswith("Status"):
            grid.add_row(key, status_text(str(value)))
        else:
            grid.add_row(key, str(value))
    console.print(grid)
    for key, value in nested:
        console.print(f"[bold]{key}[/bold]")
        console.print(JSON(json.dumps(value), indent=2, highlight=False))


def print_created(created: Mapping[str, Any], arn_key: str, json_out: bool) -> None:
    """A Create* answer: the whole of it as JSON, or its ARN on a line of stdout."""
    if json_out:
        print_json(created)
    else:
        sys.stdout.write(f"{created[arn_key]}\n")
