"""Benchmark: model artifact packaging/extraction vs GNU tar + pigz and Python's tarfile.

Usage: python bench/packaging.py [--size-mb 200] [--rounds 3] [--level 6] [--keep]

Generates a mixed folder under bench/.work/ (half random binary, ~40% CSV-like text, ~10% in
200 small files, half random half text), then times, in interleaved rounds (ABC then CBA order,
so drift on a shared machine hits every contender alike):

* packing: ``homeport.artifacts.pack_dir`` vs ``tar -I 'pigz -N' -cf`` vs tarfile ``w:gz``
  at the same level N;
* extraction of the pigz-made archive: ``extract_safe`` vs ``tar -I pigz -xf``.

Throughput is input (uncompressed) MB per second. The last lines are ``RATIO ...`` summaries:
the median and range of the per-round ratios ours/pigz.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.artifacts import extract_safe, pack_dir  # noqa: E402

WORK = ROOT / "bench" / ".work"
MB = 1_000_000
_WORDS = ["alpha", "beta", "gamma", "delta", "train", "label", "feature", "epoch", "loss", "valid"]


def _csv_text(rng: random.Random, size: int) -> bytes:
    lines: list[str] = []
    n = 0
    while n < size:
        line = (
            f"{rng.randrange(1_000_000)},{rng.random():.6f},{rng.gauss(0, 1):.4f},"
            f"{rng.choice(_WORDS)},{rng.choice(_WORDS)},{rng.randrange(10)}\n"
        )
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()[:size]


def make_dataset(root: Path, size_mb: int) -> int:
    """Create the mixed folder; return its total file bytes."""
    rng = random.Random(1234)
    total = size_mb * 1024 * 1024
    big_bin, big_txt, small = total // 8, total // 10, total // 10 // 200
    (root / "model").mkdir(parents=True)
    (root / "code").mkdir()
    (root / "data" / "shards").mkdir(parents=True)
    for i in range(4):
        (root / "model" / f"weights-{i}.bin").write_bytes(os.urandom(big_bin))
        (root / "data" / f"train-{i}.csv").write_bytes(_csv_text(rng, big_txt))
    for i in range(200):
        body = os.urandom(small) if i % 2 else _csv_text(rng, small)
        (root / "data" / "shards" / f"part-{i:04d}.dat").write_bytes(body)
    (root / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _cpu_seconds() -> float:
    # Our own threads plus waited-for children (tar and pigz): CPU time is far less sensitive
    # than wall time to other tenants of a shared machine.
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object], cpu: list[float]) -> float:
    """Run ``fn``; return its wall seconds and append its CPU seconds to ``cpu``."""
    cpu_start, start = _cpu_seconds(), time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    cpu.append(_cpu_seconds() - cpu_start)
    return wall


def _pack_pytar(src: Path, dest: Path, level: int) -> None:
    with tarfile.open(dest, "w:gz", compresslevel=level) as tf:
        for entry in sorted(os.listdir(src)):
            tf.add(src / entry, arcname=entry)


def _fmt(xs: list[float]) -> str:
    return " ".join(f"{x:7.1f}" for x in xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--level", type=int, default=6)
    ap.add_argument("--keep", action="store_true", help="leave bench/.work in place")
    args = ap.parse_args()
    if shutil.which("pigz") is None:
        print("pigz not found: apt-get install -y pigz", file=sys.stderr)
        return 2
    level = args.level
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    try:
        return _run(args.size_mb, args.rounds, level)
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)


def _run(size_mb: int, rounds: int, level: int) -> int:
    from homeport.artifacts.pgzip import DEFAULT_CODEC

    src = WORK / "src"
    t0 = time.perf_counter()
    nbytes = make_dataset(src, size_mb)
    pigz_version = subprocess.run(["pigz", "--version"], capture_output=True, text=True)
    print(
        f"dataset: {nbytes / MB:.1f} MB in {sum(1 for _ in src.rglob('*'))} entries "
        f"(generated in {time.perf_counter() - t0:.1f}s)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{(pigz_version.stdout or pigz_version.stderr).strip()}, codec {DEFAULT_CODEC.name}, "
        f"load avg {os.getloadavg()[0]:.2f}"
    )
    print(f"level {level}, {rounds} rounds, interleaved ABC/CBA; throughput = input MB/s\n")
    # Warm the page cache so the first contender does not pay for cold reads.
    subprocess.run(["tar", "-cf", "/dev/null", "-C", str(src), "."], check=True)

    out = {name: WORK / f"{name}.tar.gz" for name in ("ours", "pigz", "pytar")}
    packers: dict[str, Callable[[], object]] = {
        "ours": lambda: pack_dir(src, out["ours"], level=level),
        "pigz": lambda: subprocess.run(
            ["tar", "-I", f"pigz -{level}", "-cf", str(out["pigz"]), "-C", str(src), "."], check=True
        ),
        "pytar": lambda: _pack_pytar(src, out["pytar"], level),
    }
    pack_tp: dict[str, list[float]] = {name: [] for name in packers}
    pack_cpu: dict[str, list[float]] = {name: [] for name in packers}
    order = list(packers)
    print("packing:")
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            out[name].unlink(missing_ok=True)
            pack_tp[name].append(nbytes / MB / _timed(packers[name], pack_cpu[name]))
        print(f"  round {r + 1}: " + ", ".join(f"{n} {pack_tp[n][-1]:.1f}" for n in order))
    sizes = {name: out[name].stat().st_size for name in order}

    ex_dirs = {name: WORK / f"x-{name}" for name in ("ours", "pigz")}
    archive = out["pigz"]
    extractors: dict[str, Callable[[], object]] = {
        "ours": lambda: extract_safe(archive, ex_dirs["ours"]),
        "pigz": lambda: subprocess.run(
            ["tar", "-I", "pigz", "-xf", str(archive), "-C", str(ex_dirs["pigz"])], check=True
        ),
    }
    ex_tp: dict[str, list[float]] = {name: [] for name in extractors}
    ex_cpu: dict[str, list[float]] = {name: [] for name in extractors}
    ex_order = list(extractors)
    print("extraction (of the pigz-made archive):")
    for r in range(rounds):
        for name in ex_order if r % 2 == 0 else ex_order[::-1]:
            shutil.rmtree(ex_dirs[name], ignore_errors=True)
            if name == "pigz":
                ex_dirs[name].mkdir()
            ex_tp[name].append(nbytes / MB / _timed(extractors[name], ex_cpu[name]))
        print(f"  round {r + 1}: " + ", ".join(f"{n} {ex_tp[n][-1]:.1f}" for n in ex_order))

    print("\nsummary (MB/s per round | median MB/s | median CPU s | archive size):")
    for name in order:
        print(
            f"  pack    {name:6s} {_fmt(pack_tp[name])} | {statistics.median(pack_tp[name]):7.1f} | "
            f"{statistics.median(pack_cpu[name]):5.2f} | "
            f"{sizes[name] / MB:7.1f} MB ({sizes[name] / nbytes:.3f})"
        )
    for name in ex_order:
        print(
            f"  extract {name:6s} {_fmt(ex_tp[name])} | {statistics.median(ex_tp[name]):7.1f} | "
            f"{statistics.median(ex_cpu[name]):5.2f} |"
        )
    print()
    for label, tp in (("packing", pack_tp), ("extraction", ex_tp)):
        ratios = [a / b for a, b in zip(tp["ours"], tp["pigz"], strict=True)]
        print(
            f"RATIO {label} ours/pigz level={level} median={statistics.median(ratios):.2f} "
            f"[{min(ratios):.2f}-{max(ratios):.2f}]"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
