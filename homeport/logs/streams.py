"""Append-only log streams: one JSON-lines file per stream, grouped like CloudWatch Logs.

A stream is ``<group>/<stream>`` (``TrainingJobs`` / ``my-job/algo-1``). Each line holds
``{"t": epoch-milliseconds, "m": message}``, so a later CloudWatch Logs API can serve events
with their timestamps. A writer is owned by one thread (the job's output reader); readers
(the CLI, tests) only read, following the file as it grows until the stream is closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_CLOSED_SUFFIX = ".closed"
_CHUNK = 1 << 20  # bytes read per call: memory stays small however long a log grows


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    message: str


def _safe_part(part: str) -> str:
    if not part or part in {".", ".."} or "\x00" in part:
        raise ValueError(f"invalid log stream name component {part!r}")
    return part


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, group: str, stream: str) -> Path:
        parts = [_safe_part(p) for p in stream.split("/")]
        return self.root.joinpath(_safe_part(group), *parts[:-1], parts[-1] + ".jsonl")

    def writer(self, group: str, stream: str) -> LogWriter:
        path = self.path(group, stream)
        path.parent.mkdir(parents=True, exist_ok=True)
        closed = path.with_name(path.name + _CLOSED_SUFFIX)
        closed.unlink(missing_ok=True)
        return LogWriter(path)

    def is_closed(self, group: str, stream: str) -> bool:
        path = self.path(group, stream)
        return path.with_name(path.name + _CLOSED_SUFFIX).exists()

    def close_stream(self, group: str, stream: str) -> None:
        path = self.path(group, stream)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + _CLOSED_SUFFIX).touch()

    def reopen(self, group: str, stream: str) -> None:
        """Forget a close marker (a resource created again under the same name)."""
        path = self.path(group, stream)
        path.with_name(path.name + _CLOSED_SUFFIX).unlink(missing_ok=True)

    def streams(self, group: str, prefix: str) -> list[str]:
        """Names of the streams ``<prefix>/...`` of a group, sorted."""
        root = self.root / _safe_part(group) / _safe_part(prefix)
        if not root.is_dir():
            return []
        return sorted(
            f"{prefix}/{p.relative_to(root).as_posix()[: -len('.jsonl')]}" for p in root.rglob("*.jsonl")
        )

    def exists(self, group: str, stream: str) -> bool:
        return self.path(group, stream).exists()

    def read_from(self, group: str, stream: str, offset: int) -> tuple[list[LogEvent], int]:
        """Complete events written after byte ``offset``, and the offset to continue from."""
        path = self.path(group, stream)
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read(_CHUNK)
                if len(data) == _CHUNK and b"\n" not in data:
                    data += fh.read()  # one event longer than a chunk: take it whole
        except FileNotFoundError:
            return [], offset
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next call
        events = []
        for raw in complete.splitlines():
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            events.append(LogEvent(int(doc["t"]), str(doc["m"])))
        return events, offset + len(complete)

    def read(self, group: str, stream: str, follow: bool = False, poll: float = 0.2) -> Iterator[LogEvent]:
        """Events from the start; with ``follow``, keep waiting for more until the stream closes."""
        offset = 0
        while True:
            # Look at the close mark before reading: every event written before it is read below.
            closed = self.is_closed(group, stream)
            events, next_offset = self.read_from(group, stream, offset)
            yield from events
            if next_offset != offset:
                offset = next_offset
                continue  # more may be waiting beyond this chunk
            if not follow or closed:
                return
            time.sleep(poll)


_CONTROL = re.compile(r"[\x00-\x1f]")


def cloudwatch_text(line: str) -> str:
    """``line`` with control characters escaped as ``#ooo`` (octal), as SageMaker's CloudWatch
    log agent writes them: ``[0]\ttrain-merror:0.05`` → ``[0]#011train-merror:0.05``."""
    if _CONTROL.search(line) is None:
        return line
    return _CONTROL.sub(lambda m: f"#{ord(m.group()):03o}", line)


class LogWriter:
    """Appends events; each line is written with one ``write`` call on an unbuffered file."""

    def __init__(self, path: Path) -> None:
        self._fh: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()

    def write(self, message: str, timestamp: float | None = None) -> None:
        """One event; control characters are written as CloudWatch Logs shows them (a tab is
        ``#011``), which is what SageMaker users' metric regexes expect."""
        message = cloudwatch_text(message)
        ts = int((time.time() if timestamp is None else timestamp) * 1000)
        line = json.dumps({"t": ts, "m": message}, ensure_ascii=False) + "\n"
        self._fh.write(line.encode("utf-8"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.fsync(self._fh.fileno())
        self._fh.close()
