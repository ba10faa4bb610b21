"""DescribeTrainingJob latency through the real server with 10,000 jobs stored, against moto_server.

Homeport side: a fresh data dir under ``bench/.work/`` whose SQLite store is filled directly
(``Store.migrate()`` + ``insert_training_job``) with 10,000 Completed training jobs shaped like
the ones ``TrainingService.create`` and the runner produce (defaults filled in, the whole
Starting → Downloading → Training → Uploading → Completed history, final metrics, artifacts);
then ``homeport server`` is started on it.

Reference: ``moto_server`` (moto's in-memory SageMaker) on another loopback port, holding the
same number of jobs created through boto3 ``create_training_job`` (``--moto-jobs`` to change).

Both are then measured from one warm boto3 client each (same botocore config), sequentially:
``describe_training_job`` on random job names, client-side ``perf_counter`` around each call.
Rounds are interleaved (ABBA order, so drift on a shared machine hits both sides alike); each
round's p50s give a per-round ratio ours / moto. Prints overall p50/p99 per side, the median
[min–max] of the per-round p50 ratios, and the verdict against the target (p50 ≤ 5 ms).

A third, informational side, ``homeport raw``, sends the same request as a bare keep-alive
``http.client`` POST (no botocore): the server's share of the latency, the rest being boto3's.

    .venv/bin/python bench/api_describe.py [--jobs 10000] [--rounds 5] [--calls 200]
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.store.database import Store  # noqa: E402
from homeport.store.records import TrainingJobRecord  # noqa: E402
from homeport.training.states import Secondary, new_transitions, transition  # noqa: E402

WORK = ROOT / "bench" / ".work"
BIN = Path(sys.executable).parent
HOMEPORT = str(BIN / "homeport")
MOTO = str(BIN / "moto_server")
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
TARGET_MS = 5.0


def job_name(i: int) -> str:
    return f"bench-describe-{i:05d}"


def request(name: str, i: int) -> dict[str, Any]:
    """A CreateTrainingJob request of a typical size (the same for both sides)."""
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "bench:latest", "TrainingInputMode": "File"},
        "HyperParameters": {f"hp{k}": str(k * 0.5) for k in range(10)},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://bench/data/{i}"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bench/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def completed_record(i: int) -> TrainingJobRecord:
    """What the store holds for a job created through the API that then ran to Completed."""
    name = job_name(i)
    spec = request(name, i)
    # The defaults TrainingService fills in (homeport/training/service.py, _defaults).
    spec["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] = False
    spec["EnableNetworkIsolation"] = False
    spec["EnableInterContainerTrafficEncryption"] = False
    spec["EnableManagedSpotTraining"] = False
    channel = spec["InputDataConfig"][0]
    channel.update(RecordWrapperType="None", CompressionType="None")
    channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "FullyReplicated"
    now = 1_700_000_000.0 + i * 100
    rec = TrainingJobRecord(
        name=name,
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name.lower()}",
        status="InProgress",
        secondary_status=Secondary.STARTING.value,
        creation_time=now,
        last_modified_time=now,
        spec=spec,
        transitions=new_transitions(now),
        model_artifacts=f"s3://bench/output/{name}/output/model.tar.gz",
    )
    transition(rec, Secondary.DOWNLOADING, now=now + 0.01)
    transition(rec, Secondary.TRAINING, now=now + 0.02)
    rec.training_start_time = now + 0.02
    transition(rec, Secondary.UPLOADING, now=now + 30)
    transition(rec, Secondary.COMPLETED, now=now + 31)
    rec.training_end_time = now + 30
    rec.exit_code = 0
    rec.final_metrics = [{"MetricName": "train:loss", "Value": 0.01 * (i % 100), "Timestamp": now + 29}]
    return rec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        HOMEPORT_HOME=str(data_dir),
    )
    env.pop("AWS_PROFILE", None)
    return env


def start(argv: list[str], ready_url: str, log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{argv[0]} exited early:\n{log_path.read_text()}")
        try:
            if requests.get(ready_url, timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"{argv[0]} not ready:\n{log_path.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def client(port: int) -> Any:
    return boto3.client(
        "sagemaker",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


def describe_with(sm: Any, name: str) -> dict[str, Any]:
    desc: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
    return desc


class RawDescribe:
    """DescribeTrainingJob as one bare POST on a kept-alive connection: botocore's request, no botocore."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "SageMaker.DescribeTrainingJob",
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/sagemaker/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        }

    def describe(self, name: str) -> dict[str, Any]:
        self.conn.request("POST", "/", body=json.dumps({"TrainingJobName": name}), headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"raw describe of {name}: HTTP {response.status}: {body[:200]!r}")
        doc: dict[str, Any] = json.loads(body)
        return doc

    def close(self) -> None:
        self.conn.close()


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs stored on the Homeport side")
    parser.add_argument("--moto-jobs", type=int, help="jobs created in moto (default: --jobs)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="describe calls per side per round")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    moto_jobs = args.moto_jobs or args.jobs
    rng = random.Random(args.seed)

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    WORK.mkdir(parents=True, exist_ok=True)
    work = WORK / f"api-describe-{os.getpid()}"
    data_dir = work / "data"
    data_dir.mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    samples: dict[str, list[float]] = {"homeport": [], "moto": [], "homeport raw": []}
    round_p50: dict[str, list[float]] = {"homeport": [], "moto": [], "homeport raw": []}
    try:
        started = time.perf_counter()
        with Store(f"sqlite:///{data_dir / 'homeport.db'}") as store:
            store.migrate()
            for i in range(args.jobs):
                store.insert_training_job(completed_record(i))
        print(f"homeport: {args.jobs} jobs inserted into SQLite in {time.perf_counter() - started:.1f} s")

        ours_port, moto_port = free_port(), free_port()
        procs.append(
            start(
                [HOMEPORT, "server", "--port", str(ours_port), "--data-dir", str(data_dir)],
                f"http://127.0.0.1:{ours_port}/_homeport/health",
                work / "homeport.log",
                env_for(data_dir),
            )
        )
        procs.append(
            start(
                [MOTO, "-H", "127.0.0.1", "-p", str(moto_port)],
                f"http://127.0.0.1:{moto_port}/moto-api/",
                work / "moto.log",
                env_for(data_dir),
            )
        )
        clients = {"homeport": client(ours_port), "moto": client(moto_port)}
        raw = RawDescribe(ours_port)

        started = time.perf_counter()
        creator = client(moto_port)
        with ThreadPoolExecutor(4) as pool:
            for _ in pool.map(
                lambda i: creator.create_training_job(**request(job_name(i), i)), range(moto_jobs)
            ):
                pass
        print(f"moto: {moto_jobs} jobs created through boto3 in {time.perf_counter() - started:.1f} s")
        counts = {"homeport": args.jobs, "moto": moto_jobs, "homeport raw": args.jobs}

        def names(side: str, n: int) -> list[str]:
            return [job_name(rng.randrange(counts[side])) for _ in range(n)]

        describe: dict[str, Callable[[str], dict[str, Any]]] = {
            side: functools.partial(describe_with, sm) for side, sm in clients.items()
        }
        describe["homeport raw"] = raw.describe
        for side, fn in describe.items():  # warm-up: connections, botocore's parsers, caches
            for name in names(side, 50):
                fn(name)
        for round_ in range(args.rounds):
            order = list(describe) if round_ % 2 == 0 else list(reversed(describe))
            for side in order:
                fn = describe[side]
                lat: list[float] = []
                for name in names(side, args.calls):
                    t0 = time.perf_counter()
                    desc = fn(name)
                    lat.append((time.perf_counter() - t0) * 1e3)
                    if desc["TrainingJobName"] != name:
                        raise SystemExit(f"{side} answered {desc['TrainingJobName']} for {name}")
                samples[side].extend(lat)
                round_p50[side].append(statistics.median(lat))
        raw.close()
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    total = args.rounds * args.calls
    print(
        f"\nDescribeTrainingJob, client-side, sequential ({args.rounds} rounds x {args.calls} calls per side)"
    )
    print(f"{'side':<14}{'jobs':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}   (n={total})")
    for side, values in samples.items():
        print(f"{side:<14}{counts[side]:>7}{pct(values, 50):>9.2f}{pct(values, 99):>9.2f}{max(values):>9.2f}")
    ratios = [a / b for a, b in zip(round_p50["homeport"], round_p50["moto"], strict=True)]
    print(
        f"RATIO homeport / moto (per-round p50): {statistics.median(ratios):.2f}x "
        f"[{min(ratios):.2f}–{max(ratios):.2f}]"
    )
    raw_ratios = [a / b for a, b in zip(round_p50["homeport raw"], round_p50["homeport"], strict=True)]
    print(
        f"server share (homeport raw / homeport, per-round p50): {statistics.median(raw_ratios):.2f} "
        f"[{min(raw_ratios):.2f}–{max(raw_ratios):.2f}]"
    )
    p50 = pct(samples["homeport"], 50)
    verdict = "MET" if p50 <= TARGET_MS else f"MISSED by {p50 - TARGET_MS:.2f} ms"
    print(f"TARGET p50 ≤ {TARGET_MS:.0f} ms with {args.jobs} jobs: {p50:.2f} ms → {verdict}")


if __name__ == "__main__":
    main()
