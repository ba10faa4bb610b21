"""Process runtime start-up: ``start()`` → first output line, against its floor costs.

Times, in interleaved rounds (ABBA order, so drift on a shared machine hits every side alike):

* ``runtime``: ``ProcessRuntime().start(spec)`` until the first line of a ``true``-like image
  script (``#!/bin/sh`` + ``echo ready``) is read from ``handle.output`` (median of N);
* ``runtime+exit``: the same, until ``wait()`` returns (the whole sandbox is gone);
* ``runtime-netns``: as ``runtime`` with ``network="none"`` (a private network namespace);
* ``unshare``: ``unshare -m -p -f -u -i --mount-proc true`` (the namespaces alone);
* ``python``: the server's venv ``python -c pass`` (one interpreter start).

and prints medians and the ratios runtime/unshare and runtime/python.

    .venv/bin/python bench/runtime_start.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from homeport.images.model import LocalImage
from homeport.runtimes.base import RunSpec
from homeport.runtimes.process import ProcessRuntime


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    runtime = ProcessRuntime()
    runtime.check()
    unshare = shutil.which("unshare") or "unshare"
    true = shutil.which("true") or "/bin/true"
    work = Path(tempfile.mkdtemp(prefix="homeport-bench-"))
    try:
        image_root = work / "image"
        image_root.mkdir()
        script = image_root / "train"
        script.write_text("#!/bin/sh\necho ready\n")
        script.chmod(0o755)
        image = LocalImage(name="bench", tag="latest", root=image_root, at="/opt/program")

        def spec(network: str) -> RunSpec:
            return RunSpec(
                name="bench", image=image, argv=["train"], env={}, mounts=[], network=network, scratch=work
            )

        def first_line(network: str) -> Callable[[], None]:
            def run() -> None:
                handle = runtime.start(spec(network))
                if handle.output.readline() != b"ready\n":
                    raise SystemExit("unexpected output from the sandbox")
                timings[f"_{network}_tail"] = timed(lambda: handle.wait())
                handle.output.close()

            return run

        timings: dict[str, float] = {}
        sides: dict[str, Callable[[], object]] = {
            "runtime": first_line("host"),
            "runtime-netns": first_line("none"),
            "unshare": lambda: subprocess.run(
                [unshare, "-m", "-p", "-f", "-u", "-i", "--mount-proc", true], check=True
            ),
            "python": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
        }
        samples: dict[str, list[float]] = {name: [] for name in [*sides, "runtime+exit"]}
        for fn in sides.values():  # warm-up: page cache, first fork of the spawner thread
            fn()
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                samples[name].append(timed(sides[name]))
                if name == "runtime":
                    samples["runtime+exit"].append(samples[name][-1] + timings["_host_tail"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{'side':<16}{'median ms':>10}{'min ms':>9}{'max ms':>9}   (n={args.rounds})")
    for name, values in samples.items():
        print(f"{name:<16}{medians[name] * 1e3:>10.2f}{min(values) * 1e3:>9.2f}{max(values) * 1e3:>9.2f}")
    print(f"runtime / unshare = {medians['runtime'] / medians['unshare']:.1f}x")
    print(f"runtime / python  = {medians['runtime'] / medians['python']:.2f}x")
    print(f"runtime-netns / runtime = {medians['runtime-netns'] / medians['runtime']:.2f}x")


if __name__ == "__main__":
    main()
