"""Helpers for the runtime tests: small fake images, line reading with deadlines, a /proc scan.

Every run started here carries a unique marker in its environment (and its scratch folder's
name, which appears in PID 1's argv), so a test can find each of its processes by scanning
/proc, and the teardown can kill any survivor by PID.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from homeport.images.model import LocalImage
from homeport.runtimes.base import Mount, RunSpec
from homeport.runtimes.process import ProcessRun, ProcessRuntime

MARKER_VARIABLE = "HOMEPORT_TEST_MARKER"


def processes_with(marker: str) -> list[int]:
    """PIDs whose argv or environment contains ``marker`` (zombies have neither)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{entry}/{part}").read_bytes()
            except OSError:
                continue
            if needle in data:
                found.append(int(entry))
                break
    return found


def wait_until_gone(marker: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def kill_leftovers(marker: str) -> None:
    for pid in processes_with(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def write_script(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text.lstrip())
    path.chmod(0o755)
    return path


@dataclass
class Sandbox:
    """Builds RunSpecs for one test and cleans up after it."""

    base: Path
    marker: str
    venv: Path
    runtime: ProcessRuntime = field(default_factory=ProcessRuntime)
    runs: list[ProcessRun] = field(default_factory=list)

    def image(self, scripts: dict[str, str], venv: bool = False, **fields: object) -> LocalImage:
        root = self.base / f"image-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        for name, text in scripts.items():
            write_script(root, name, text)
        return LocalImage(
            name="t",
            tag="latest",
            root=root,
            at="/opt/program",
            venv=self.venv if venv else None,
            **fields,  # type: ignore[arg-type]
        )

    def folder(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spec(
        self,
        image: LocalImage,
        argv: list[str],
        env: dict[str, str] | None = None,
        mounts: list[Mount] | None = None,
        **fields: object,
    ) -> RunSpec:
        return RunSpec(
            name=f"test/{self.marker}",
            image=image,
            argv=argv,
            env={MARKER_VARIABLE: self.marker, **(env or {})},
            mounts=mounts or [],
            scratch=self.base / f"scratch-{self.marker}",
            **fields,  # type: ignore[arg-type]
        )

    def start(self, spec: RunSpec) -> ProcessRun:
        run = self.runtime.start(spec)
        self.runs.append(run)
        return run

    def run(self, spec: RunSpec, timeout: float = 30) -> tuple[int | None, str]:
        """Start, collect all output, wait: (exit code, output)."""
        run = self.start(spec)
        output = run.output.read().decode()
        return run.wait(timeout), output


class Lines:
    """The run's output read line by line on a thread, so each line can be awaited with a deadline."""

    def __init__(self, run: ProcessRun) -> None:
        self._lines: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._pump, args=(run,), daemon=True)
        self._thread.start()

    def _pump(self, run: ProcessRun) -> None:
        for line in run.output:
            self._lines.put(line)
        self._lines.put(b"")  # end of output

    def next(self, timeout: float = 10) -> bytes:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout} s") from None

    def until(self, expected: bytes, timeout: float = 10) -> list[bytes]:
        """Lines up to and including the first that contains ``expected``."""
        seen: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.0, deadline - time.monotonic()))
            seen.append(line)
            if expected in line:
                return seen
            if line == b"":
                raise AssertionError(f"output ended without {expected!r}: {b''.join(seen)!r}")
