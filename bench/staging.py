"""Channel staging from the embedded local object store (1 GB) against ``cp -r`` of the same folder.

Builds a ``LocalObjectStore`` under ``bench/.work/`` holding 1 GB under ``s3://bench/data/``
(8 x 100 MB objects plus 200 x 1 MB objects in 10 sub-folders, random bytes), each written to
a temp file first and stored with ``put_file``. Then, in interleaved rounds (ABBA order, so
drift on a shared machine hits both sides alike), times:

* ``stage_channel``: ``homeport.training.staging.stage_channel(store, channel, dest)`` for an
  S3Prefix channel on ``s3://bench/data`` (what a training job's Downloading phase runs);
* ``cp -r``: ``cp -r <bucket folder>/data dest2`` (a subprocess);

each followed by ``sync`` (``os.sync()``) inside the timing; the destination folders are
removed (and synced) between rounds, outside the timing. Prints medians and the median
[min–max] of the per-round ratios stage_channel / cp -r against the target (≤ 0.2). A third,
informational side, ``stage_channel, no sync``, shows the staging code's own cost.

Disk: about 2 GB at the full size (the store, plus cp's copy; staging hard-links). With less
than 3 GB free the data set is scaled down to a third of the free space, and says so.

    .venv/bin/python bench/staging.py [--rounds 5] [--size-mb 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.storage.base import S3Uri  # noqa: E402
from homeport.storage.local import LocalObjectStore  # noqa: E402
from homeport.training.staging import stage_channel  # noqa: E402

WORK = ROOT / "bench" / ".work"
MB = 1_000_000
TARGET = 0.2
CHANNEL = {
    "ChannelName": "train",
    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/data"}},
}


def build_store(store: LocalObjectStore, scratch: Path, size_mb: int) -> tuple[int, int]:
    """Fill s3://bench/data/ with ~size_mb: 80% in 8 big objects, 20% in 200 small ones."""
    store.create_bucket("bench")
    big = size_mb * 8 // 10 // 8 * MB
    small = max(size_mb * 2 // 10 * MB // 200, 1)
    objects = [(f"data/big/part-{i}.bin", big) for i in range(8)]
    objects += [(f"data/small/{i % 10:02d}/rec-{i:03d}.bin", small) for i in range(200)]
    total = 0
    scratch.mkdir(parents=True, exist_ok=True)
    for key, size in objects:
        tmp = scratch / "object.tmp"
        with tmp.open("wb") as fh:
            left = size
            while left:
                chunk = min(left, 8 * MB)
                fh.write(os.urandom(chunk))
                left -= chunk
        store.put_file(S3Uri("bench", key), tmp)
        tmp.unlink()
        total += size
    return len(objects), total


def remove(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=1000, help="data set size in MB (10^6 bytes)")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(WORK).free // MB
    size_mb = args.size_mb
    if free_mb < 3 * size_mb:
        size_mb = max(free_mb // 3, 10)
        print(
            f"NOTE: only {free_mb} MB free under {WORK}; scaling the data set down from "
            f"{args.size_mb} MB to {size_mb} MB (this run needs about 2x the data set)"
        )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    work = WORK / f"staging-{os.getpid()}"
    store_root = work / "objects"
    dest_ours = work / "jobs" / "ours"
    dest_cp = work / "jobs" / "cp"
    samples: dict[str, list[float]] = {"stage_channel": [], "cp -r": [], "stage_channel, no sync": []}
    try:
        store = LocalObjectStore(store_root)
        started = time.perf_counter()
        count, total = build_store(store, work / "scratch", size_mb)
        os.sync()
        print(f"store: {count} objects, {total / MB:.0f} MB, built in {time.perf_counter() - started:.1f} s")
        source = store.local_path(S3Uri("bench", "data/"))
        assert source is not None and source.is_dir()

        def ours(sync: bool = True) -> float:
            t0 = time.perf_counter()
            staged = stage_channel(store, CHANNEL, dest_ours)
            if sync:
                os.sync()
            elapsed = time.perf_counter() - t0
            if staged.files != count or staged.bytes != total:
                raise SystemExit(f"staged {staged.files} files/{staged.bytes} B, expected {count}/{total}")
            return elapsed

        def cp() -> float:
            dest_cp.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            subprocess.run(["cp", "-r", str(source), str(dest_cp)], check=True)
            os.sync()
            return time.perf_counter() - t0

        def ours_no_sync() -> float:
            return ours(sync=False)

        sides: dict[str, Callable[[], float]] = {
            "stage_channel": ours,
            "cp -r": cp,
            "stage_channel, no sync": ours_no_sync,
        }
        for fn in sides.values():  # warm-up: dentry/inode caches, the cp binary
            fn()
            remove(dest_ours, dest_cp)
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                samples[name].append(sides[name]())
                remove(dest_ours, dest_cp)
        staged = stage_channel(store, CHANNEL, dest_ours)
        linked = staged.linked
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\nchannel staging of {total / MB:.0f} MB in {count} objects (hard-linked: {linked}), incl. sync")
    print(f"{'side':<24}{'median ms':>11}{'min ms':>10}{'max ms':>10}{'MB/s':>10}   (n={args.rounds})")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"{name:<24}{median * 1e3:>11.1f}{min(values) * 1e3:>10.1f}{max(values) * 1e3:>10.1f}"
            f"{total / MB / median:>10.0f}"
        )
    ratios = [a / b for a, b in zip(samples["stage_channel"], samples["cp -r"], strict=True)]
    ratio = statistics.median(ratios)
    print(f"RATIO stage_channel / cp -r: {ratio:.4f}x [{min(ratios):.4f}–{max(ratios):.4f}]")
    verdict = "MET" if ratio <= TARGET else f"MISSED by {ratio - TARGET:.3f}"
    print(f"TARGET ratio ≤ {TARGET}: {ratio:.4f} → {verdict}")


if __name__ == "__main__":
    main()
