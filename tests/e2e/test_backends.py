"""A real server on the production backends: PostgreSQL for metadata, an S3 endpoint (moto) for objects.

The PostgreSQL server and the moto server are the session's shared ones (tests/conftest.py);
each server started here gets a fresh database, and each test fresh buckets. Training data is
put into S3 with boto3 directly and results are read back the same way, so nothing but the
wire protocols connects the test to Homeport.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from e2e_support import (
    SCRIPTED,
    Server,
    job_processes,
    start_server,
    training_request,
    wait_for,
    wait_secondary,
)

CHANNEL_FILES = {
    "part-a.csv": "1,2,3\n4,5,6\n",
    "nested/part-b.csv": "7,8,9\n",
    "nested/deeper/part-c.csv": "10,11,12\n",
}


def unique(prefix: str) -> str:
    """A name no other test (or concurrent test session on this machine) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start_backend_server(tmp: Path, database_url: str, s3_endpoint: str, *extra: str) -> Server:
    return start_server(
        tmp,
        "--database-url",
        database_url,
        "--object-store",
        "s3",
        "--s3-endpoint-url",
        s3_endpoint,
        *extra,
    )


def put_training_data(s3: Any) -> tuple[str, str]:
    """A fresh bucket with CHANNEL_FILES under ``datasets/train/`` (and a decoy beside it)."""
    bucket = unique("hp-e2e-data")
    s3.create_bucket(Bucket=bucket)
    for rel, text in CHANNEL_FILES.items():
        s3.put_object(Bucket=bucket, Key=f"datasets/train/{rel}", Body=text.encode())
    s3.put_object(Bucket=bucket, Key="datasets/other/not-in-channel.csv", Body=b"0\n")
    return bucket, f"s3://{bucket}/datasets/train/"


def s3_channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
    }


def s3_keys(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    return keys


def stored_job_names(database_url: str, prefix: str) -> list[str]:
    """Training job names as the PostgreSQL database itself holds them."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT name FROM training_jobs WHERE name LIKE :p ORDER BY name")
            rows = conn.execute(query, {"p": f"{prefix}%"})
            return [str(r[0]) for r in rows]
    finally:
        engine.dispose()


def kill_job_processes(job_name: str) -> None:
    for pid in job_processes(job_name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def backend_db(postgres_server: Any) -> str:
    url: str = postgres_server.create_database()
    return url


@pytest.fixture(scope="module")
def backend_server(
    tmp_path_factory: pytest.TempPathFactory, backend_db: str, moto_endpoint: str
) -> Iterator[Server]:
    srv = start_backend_server(tmp_path_factory.mktemp("homeport-backends"), backend_db, moto_endpoint)
    try:
        srv.add_image("scripted", SCRIPTED)
        yield srv
    finally:
        srv.stop()


def test_training_job_reads_and_writes_s3_and_keeps_state_in_postgresql(
    backend_server: Server, backend_db: str, s3_client: Any
) -> None:
    srv, s3 = backend_server, s3_client
    sm = srv.sagemaker()
    data_bucket, channel_uri = put_training_data(s3)
    out_bucket = unique("hp-e2e-out")  # created by the server on upload
    name = unique("s3-job")
    checkpoint_prefix = f"checkpoints/{name}"
    # A checkpoint from an "earlier run": downloaded into /opt/ml/checkpoints before training.
    s3.create_bucket(Bucket=out_bucket)
    s3.put_object(Bucket=out_bucket, Key=f"{checkpoint_prefix}/earlier/ckpt-0.txt", Body=b"epoch 0\n")

    sm.create_training_job(
        **training_request(
            name,
            InputDataConfig=[s3_channel("train", channel_uri)],
            OutputDataConfig={"S3OutputPath": f"s3://{out_bucket}/jobs/nested"},
            CheckpointConfig={"S3Uri": f"s3://{out_bucket}/{checkpoint_prefix}"},
        )
    )
    desc = wait_for(sm, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    model_key = f"jobs/nested/{name}/output/model.tar.gz"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{out_bucket}/{model_key}"

    # The artifacts are on the S3 endpoint, not in the data dir.
    keys = s3_keys(s3, out_bucket)
    assert {model_key, f"jobs/nested/{name}/output/output.tar.gz"} <= keys, sorted(keys)
    assert f"{checkpoint_prefix}/ckpt-final.txt" in keys, sorted(keys)
    local_objects = srv.data_dir / "objects"
    assert not local_objects.exists() or not any(p.is_file() for p in local_objects.rglob("*"))

    body = s3.get_object(Bucket=out_bucket, Key=model_key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("contract.json"))
        extracted = tar.extractfile(member)
        assert extracted is not None
        contract = json.loads(extracted.read())
        assert any(n.endswith("sub/weights.txt") for n in tar.getnames()), tar.getnames()
    # Every object under the prefix, at its path relative to the prefix; nothing beside it.
    assert contract["data"] == {f"train/{rel}": text for rel, text in CHANNEL_FILES.items()}
    # Downloaded copies, not hard links into a store: the data folder may be written.
    assert contract["data_writable"] is True
    assert contract["config"]["inputdataconfig.json"]["train"]["S3DistributionType"] == "FullyReplicated"
    assert contract["checkpoints"] == {"earlier/ckpt-0.txt": "epoch 0\n"}

    # The state lives in PostgreSQL (and no SQLite file appeared in the data dir).
    assert stored_job_names(backend_db, name) == [name]
    assert not (srv.data_dir / "homeport.db").exists()
    assert s3_keys(s3, data_bucket) == {
        *(f"datasets/train/{rel}" for rel in CHANNEL_FILES),
        "datasets/other/not-in-channel.csv",
    }


def test_s3_clients_sent_to_homeport_are_told_the_real_s3(backend_server: Server, moto_endpoint: str) -> None:
    """With an S3 backend the server does not serve the S3 API: its error names the endpoint that
    holds the objects and the setting that sends clients there."""
    s3 = boto3.client(
        "s3",
        endpoint_url=backend_server.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as raised:
        s3.list_objects_v2(Bucket="anything")
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidRequest"
    assert f"AWS_ENDPOINT_URL_S3={moto_endpoint}" in error["Message"]
    assert error["Endpoint"] == moto_endpoint.split("://", 1)[1]
    with pytest.raises(ClientError) as head:  # HEAD: the status alone, and no redirect loop
        s3.head_object(Bucket="anything", Key="k")
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The SageMaker API on the same URL is unaffected.
    assert "TrainingJobSummaries" in backend_server.sagemaker().list_training_jobs()


def test_list_training_jobs_pages_through_postgresql(backend_server: Server, backend_db: str) -> None:
    sm = backend_server.sagemaker()
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(5)]
    output = {"S3OutputPath": f"s3://{unique('hp-e2e-out')}/jobs"}
    for name in names:
        sm.create_training_job(**training_request(name, OutputDataConfig=output))
    for name in names:
        desc = wait_for(sm, name)
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")

    def walk(**kwargs: Any) -> list[list[str]]:
        pages: list[list[str]] = []
        token = None
        while True:
            page = sm.list_training_jobs(
                NameContains=prefix, MaxResults=2, **kwargs, **({"NextToken": token} if token else {})
            )
            pages.append([s["TrainingJobName"] for s in page["TrainingJobSummaries"]])
            token = page.get("NextToken")
            if not token:
                return pages
            assert len(pages) < 10, f"pagination does not end: {pages}"

    by_name = walk(SortBy="Name", SortOrder="Ascending")
    assert by_name == [names[0:2], names[2:4], names[4:5]]
    by_time = walk(SortBy="CreationTime", SortOrder="Descending")
    assert [n for page in by_time for n in page] == list(reversed(names))
    assert [len(page) for page in by_time] == [2, 2, 1]
    completed = walk(StatusEquals="Completed", SortBy="Name", SortOrder="Descending")
    assert [n for page in completed for n in page] == list(reversed(names))
    paginator = sm.get_paginator("list_training_jobs")
    pages = paginator.paginate(NameContains=prefix.upper(), PaginationConfig={"PageSize": 2})
    assert sorted(s["TrainingJobName"] for p in pages for s in p["TrainingJobSummaries"]) == names
    assert stored_job_names(backend_db, prefix) == names


def test_kill9_mid_training_fails_the_job_after_restart_on_postgresql_and_s3(
    tmp_path: Path, postgres_server: Any, moto_endpoint: str, s3_client: Any
) -> None:
    database_url: str = postgres_server.create_database()
    _, channel_uri = put_training_data(s3_client)
    out_bucket = unique("hp-e2e-out")
    name, after = unique("restart"), unique("after-restart")
    srv = start_backend_server(tmp_path, database_url, moto_endpoint, "--stop-grace", "2")
    try:
        srv.add_image("scripted", SCRIPTED)
        sm = srv.sagemaker()
        sm.create_training_job(
            **training_request(
                name,
                HyperParameters={"behaviour": "sleep", "seconds": "300"},
                InputDataConfig=[s3_channel("train", channel_uri)],
                OutputDataConfig={"S3OutputPath": f"s3://{out_bucket}/jobs"},
            )
        )
        wait_secondary(sm, name, "Training")
        srv.kill9()
        assert stored_job_names(database_url, name) == [name]  # the row outlived the server

        srv.start()
        desc = wait_for(sm, name, timeout=30)
        assert desc["TrainingJobStatus"] == "Failed"
        assert desc["SecondaryStatus"] == "Failed"
        assert "server stopped while this job was in secondary status Training" in desc["FailureReason"]
        assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
            "Starting",
            "Downloading",
            "Training",
            "Failed",
        ]

        # The restarted server goes on working on the same backends.
        sm.create_training_job(
            **training_request(
                after,
                InputDataConfig=[s3_channel("train", channel_uri)],
                OutputDataConfig={"S3OutputPath": f"s3://{out_bucket}/jobs"},
            )
        )
        desc = wait_for(sm, after)
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        assert f"jobs/{after}/output/model.tar.gz" in s3_keys(s3_client, out_bucket)
        assert stored_job_names(database_url, "") == sorted([name, after])
    finally:
        srv.stop()
        kill_job_processes(name)
        kill_job_processes(after)
