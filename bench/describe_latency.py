"""DescribeTrainingJob's store cost: get_training_job latency with 10,000 jobs in the store.

Inserts the jobs into a fresh SQLite store (in a temporary folder) and, with ``--pg-url``, into
a fresh PostgreSQL database created through that URL and dropped afterwards; then times
random case-varied lookups by name and prints p50/p99.

    .venv/bin/python bench/describe_latency.py [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from homeport.store.database import Store
from homeport.store.records import TrainingJobRecord


def make_job(i: int) -> TrainingJobRecord:
    name = f"Bench-Job-{i:05d}"
    now = 1_700_000_000.0 + i
    return TrainingJobRecord(
        name=name,
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name.lower()}",
        status=("InProgress", "Completed", "Failed", "Stopped")[i % 4],
        secondary_status="Completed",
        creation_time=now,
        last_modified_time=now + 60,
        # Roughly the size of a real CreateTrainingJob request.
        spec={
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": "bench:latest", "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::123456789012:role/bench",
            "HyperParameters": {f"hp{k}": str(k * 0.5) for k in range(10)},
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {"S3Uri": f"s3://bench/data/{i}", "S3DataType": "S3Prefix"}
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://bench/output"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        transitions=[{"Status": s, "StartTime": now + k} for k, s in enumerate(["Starting", "Training"])],
        final_metrics=[{"MetricName": "loss", "Value": 0.01 * (i % 100), "Timestamp": now + 50}],
    )


def measure(label: str, store: Store, jobs: int, lookups: int, rng: random.Random) -> None:
    store.migrate()
    started = time.perf_counter()
    for i in range(jobs):
        store.insert_training_job(make_job(i))
    insert_s = time.perf_counter() - started

    names = [f"Bench-Job-{rng.randrange(jobs):05d}" for _ in range(lookups)]
    names = [n.lower() if rng.random() < 0.5 else n.upper() for n in names]
    for n in names[:200]:  # warm the pool, statement cache and page cache
        store.get_training_job(n)
    samples = []
    for n in names:
        t0 = time.perf_counter_ns()
        rec = store.get_training_job(n)
        samples.append(time.perf_counter_ns() - t0)
        assert rec is not None
    samples_ms = [s / 1e6 for s in samples]
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    print(
        f"{label:<11} {jobs} jobs inserted in {insert_s:.1f} s ({insert_s / jobs * 1e3:.2f} ms each); "
        f"get_training_job over {lookups} lookups: p50 {cuts[49]:.3f} ms, p99 {cuts[98]:.3f} ms, "
        f"max {max(samples_ms):.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-url", help="PostgreSQL URL of a role that may CREATE DATABASE")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with (
        tempfile.TemporaryDirectory(prefix="homeport-bench-") as tmp,
        Store(f"sqlite:///{Path(tmp) / 'homeport.db'}") as store,
    ):
        measure("sqlite", store, args.jobs, args.lookups, rng)

    if args.pg_url:
        admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        database = f"homeport_bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        try:
            url = sa.make_url(args.pg_url).set(database=database).render_as_string(hide_password=False)
            with Store(url) as store:
                measure("postgresql", store, args.jobs, args.lookups, rng)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
