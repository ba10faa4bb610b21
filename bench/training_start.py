"""CreateTrainingJob → the image's ``train`` running, with a cached image, on a real server.

Starts ``homeport server`` on 127.0.0.1 with a fresh data dir under ``bench/.work/``, registers
a tiny image whose ``train`` prints ``STARTED <time.time()>`` as its first statement, runs two
warm-up jobs, then N sequential jobs. Per job: ``t0 = time.time()`` just before boto3's
``create_training_job`` call, ``t1`` = the STARTED timestamp read back from the job's log
stream (``logs/TrainingJobs/JOB/algo-1.jsonl``); the job is awaited to Completed before the next.

Each round also times, side by side (ABBA order, so drift on a shared machine hits every
side alike):

* ``unshare+python``: ``unshare -m -p -f -u -i --mount-proc <venv python> -c 'print(time.time())'``,
  spawn → the printed timestamp (the namespaces plus one interpreter start: the floor of any
  isolated Python ``train``);
* ``python -c pass``: the venv interpreter's start-and-exit time.

and prints median/p90 of each side, the median [min–max] of the per-round ratios, the phases
of the job's start from its SecondaryStatusTransitions, and the verdict against the target
(median ≤ 0.3 s).

    .venv/bin/python bench/training_start.py [--jobs 20] [--channel]

``--channel`` adds a one-file S3Prefix input channel to every job (staging included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
BIN = Path(sys.executable).parent
HOMEPORT = str(BIN / "homeport")
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "bench-start"
TARGET_S = 0.3
TRAIN_SCRIPT = (
    "#!/usr/bin/env python\n"
    "print(f\"STARTED {__import__('time').time():.6f}\", flush=True)\n"
    "open('/opt/ml/model/done', 'w').write('ok')\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="homeport",
        AWS_SECRET_ACCESS_KEY="homeport",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        HOMEPORT_HOME=str(data_dir),
    )
    # Image venvs are content-keyed caches: share the test suite's so none is rebuilt here.
    env.setdefault("HOMEPORT_VENV_CACHE", str(Path.home() / ".cache" / "homeport-test-venvs"))
    env.pop("AWS_PROFILE", None)
    return env


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [HOMEPORT, "server", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(data_dir),
            start_new_session=True,
        )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early:\n{log_path.read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_homeport/health", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise SystemExit(f"server not ready:\n{log_path.read_text()}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def homeport(data_dir: Path, *args: str) -> None:
    subprocess.run(
        [HOMEPORT, *args, "--data-dir", str(data_dir)],
        check=True,
        env=server_env(data_dir),
        stdout=subprocess.DEVNULL,
        timeout=600,
    )


def started_at(log_file: Path, timeout: float = 60) -> float:
    """The STARTED timestamp from a job's log stream, polling the file until it appears."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            lines = log_file.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                message = str(json.loads(line)["m"])
            except (ValueError, KeyError):
                continue
            if message.startswith("STARTED "):
                return float(message.split()[1])
        time.sleep(0.005)
    raise SystemExit(f"no STARTED line in {log_file} after {timeout} s")


def wait_done(sm: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        desc: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        if desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            if desc["TrainingJobStatus"] != "Completed":
                raise SystemExit(f"{name} ended {desc['TrainingJobStatus']}: {desc.get('FailureReason')}")
            return desc
        time.sleep(0.02)
    raise SystemExit(f"{name} did not finish in {timeout} s")


def request(name: str, channel: bool) -> dict[str, Any]:
    req: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bench-output/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": {"lr": "0.1"},
    }
    if channel:
        req["InputDataConfig"] = [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench-data/train"}},
            }
        ]
    return req


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method) of values."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="measured jobs (rounds)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--channel", action="store_true", help="give every job a one-file input channel")
    args = parser.parse_args()

    unshare = shutil.which("unshare") or "unshare"
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    WORK.mkdir(parents=True, exist_ok=True)
    work = WORK / f"training-start-{os.getpid()}"
    data_dir = work / "data"
    image_dir = work / "image"
    image_dir.mkdir(parents=True)
    data_dir.mkdir()
    (image_dir / "train").write_text(TRAIN_SCRIPT)
    (image_dir / "train").chmod(0o755)
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = start_server(data_dir, port, work / "server.log")
        homeport(data_dir, "image", "add", IMAGE, str(image_dir))
        if args.channel:
            (work / "train.csv").write_text("1,2,3\n4,5,6\n")
            homeport(data_dir, "cp", str(work / "train.csv"), "s3://bench-data/train/train.csv")
        sm = boto3.client(
            "sagemaker",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="homeport",
            aws_secret_access_key="homeport",
            config=Config(retries={"max_attempts": 1}),
        )
        logs = data_dir / "logs" / "TrainingJobs"
        phases: dict[str, list[float]] = {"create→Downloading": [], "Downloading→Training": []}
        phases["Training→STARTED"] = []

        def run_job(name: str) -> float:
            t0 = time.time()
            sm.create_training_job(**request(name, args.channel))
            t1 = started_at(logs / name / "algo-1.jsonl")
            desc = wait_done(sm, name)
            starts = {t["Status"]: t["StartTime"].timestamp() for t in desc["SecondaryStatusTransitions"]}
            if not name.startswith("warmup"):
                phases["create→Downloading"].append(starts["Downloading"] - t0)
                phases["Downloading→Training"].append(starts["Training"] - starts["Downloading"])
                phases["Training→STARTED"].append(t1 - starts["Training"])
            return t1 - t0

        def isolated_print() -> float:
            t0 = time.time()
            out = subprocess.run(
                [
                    unshare,
                    "-m",
                    "-p",
                    "-f",
                    "-u",
                    "-i",
                    "--mount-proc",
                    sys.executable,
                    "-c",
                    "import time; print(f'{time.time():.6f}')",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            return float(out.split()[0]) - t0

        def python_pass() -> float:
            return timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))

        for i in range(args.warmup):
            run_job(f"warmup-{i}")
            isolated_print()
            python_pass()

        sides: dict[str, Callable[[int], float]] = {
            "job": lambda i: run_job(f"bench-{i:03d}"),
            "unshare+python": lambda _i: isolated_print(),
            "python -c pass": lambda _i: python_pass(),
        }
        samples: dict[str, list[float]] = {side: [] for side in sides}
        for round_ in range(args.jobs):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                samples[side].append(sides[side](round_))
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    what = "cached image, one input channel" if args.channel else "cached image"
    print(f"\nCreateTrainingJob → train started ({what})")
    print(f"{'side':<24}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}{'max ms':>9}   (n={args.jobs})")
    for side, values in samples.items():
        print(
            f"{side:<24}{statistics.median(values) * 1e3:>10.1f}{quantile(values, 90) * 1e3:>9.1f}"
            f"{min(values) * 1e3:>9.1f}{max(values) * 1e3:>9.1f}"
        )
    print("phases of the job (from SecondaryStatusTransitions; server-side timestamps):")
    for phase, values in phases.items():
        print(
            f"  {phase:<22}{statistics.median(values) * 1e3:>10.1f}{quantile(values, 90) * 1e3:>9.1f}"
            f"{min(values) * 1e3:>9.1f}{max(values) * 1e3:>9.1f}"
        )
    for ref in ("unshare+python", "python -c pass"):
        ratios = [j / r for j, r in zip(samples["job"], samples[ref], strict=True)]
        print(f"RATIO job / {ref}: {statistics.median(ratios):.2f}x [{min(ratios):.2f}–{max(ratios):.2f}]")
    median = statistics.median(samples["job"])
    verdict = "MET" if median <= TARGET_S else f"MISSED by {(median - TARGET_S) * 1e3:.0f} ms"
    print(f"TARGET median ≤ {TARGET_S * 1e3:.0f} ms: {median * 1e3:.1f} ms → {verdict}")


if __name__ == "__main__":
    main()
