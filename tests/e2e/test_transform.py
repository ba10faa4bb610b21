"""Batch transform end to end: boto3 and the AWS CLI against a live server with real containers."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError
from e2e_support import ROLE, Server

BATCH = Path(__file__).parent / "images" / "batch_flask"
AWS = str(Path(__file__).parent.parent.parent / ".venv" / "bin" / "aws")


@pytest.fixture(scope="module")
def batch_models(server: Server, sm: Any) -> str:
    server.add_image("batch-flask", BATCH, "--requirements", str(BATCH / "requirements.txt"))
    sm.create_model(ModelName="batch", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "batch-flask"})
    sm.create_model(
        ModelName="batch-offers",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "batch-flask", "Environment": {"OFFER_PARAMS": "1"}},
    )
    return "batch"


def put(server: Server, tmp: Path, uri: str, data: bytes) -> None:
    path = tmp / uuid.uuid4().hex
    path.write_bytes(data)
    server.cp(str(path), uri)


def get(server: Server, tmp: Path, uri: str) -> bytes:
    path = tmp / uuid.uuid4().hex
    server.cp(uri, str(path))
    return path.read_bytes()


def job(name: str, uri: str, output: str, model: str = "batch", **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
    return request


def finish(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        desc: dict[str, Any] = sm.describe_transform_job(TransformJobName=name)
        if desc["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return desc
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish")


def rows(data: bytes) -> list[list[str]]:
    return [line.split(",") for line in data.decode().splitlines() if line]


def test_line_multirecord_over_nested_prefixes(
    server: Server, sm: Any, batch_models: str, tmp_path: Path
) -> None:
    put(server, tmp_path, "s3://batch-in/multi/a.csv", b"1,2\n3,4\n5,6\n")
    put(server, tmp_path, "s3://batch-in/multi/nested/deeper/b.csv", b"10,20\n30,40\n")
    sm.create_transform_job(
        **job("tj-multi", "s3://batch-in/multi", "s3://batch-out/multi", BatchStrategy="MultiRecord")
    )
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="tj-multi", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    desc = sm.describe_transform_job(TransformJobName="tj-multi")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["TransformStartTime"] <= desc["TransformEndTime"]
    a = rows(get(server, tmp_path, "s3://batch-out/multi/a.csv.out"))
    assert [r[0] for r in a] == ["3", "7", "11"]  # input order kept
    assert {r[1] for r in a} == {"3"}  # three lines packed into one request
    b = rows(get(server, tmp_path, "s3://batch-out/multi/nested/deeper/b.csv.out"))
    assert [r[0] for r in b] == ["30", "70"]
    listed = sm.list_transform_jobs(NameContains="tj-multi")["TransformJobSummaries"]
    assert [j["TransformJobName"] for j in listed] == ["tj-multi"]


def test_single_record_and_gzip(server: Server, sm: Any, batch_models: str, tmp_path: Path) -> None:
    put(server, tmp_path, "s3://batch-in/gz/data.csv.gz", gzip.compress(b"1,1\n2,2\n3,3\n"))
    sm.create_transform_job(
        **job(
            "tj-single-gz",
            "s3://batch-in/gz",
            "s3://batch-out/gz",
            BatchStrategy="SingleRecord",
            TransformInput={"CompressionType": "Gzip"},
        )
    )
    desc = finish(sm, "tj-single-gz")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    out = rows(get(server, tmp_path, "s3://batch-out/gz/data.csv.gz.out"))
    assert [r[0] for r in out] == ["2", "4", "6"] and {r[1] for r in out} == {"1"}


def test_recordio(server: Server, sm: Any, batch_models: str, tmp_path: Path) -> None:
    def record(payload: bytes) -> bytes:
        pad = (4 - len(payload) % 4) % 4
        return struct.pack("<II", 0xCED7230A, len(payload)) + payload + b"\0" * pad

    put(
        server,
        tmp_path,
        "s3://batch-in/rio/data.rec",
        b"".join(record(p) for p in (b"alpha", b"be", b"gamma!!!")),
    )
    sm.create_transform_job(
        **job(
            "tj-recordio",
            "s3://batch-in/rio",
            "s3://batch-out/rio",
            BatchStrategy="MultiRecord",
            TransformInput={"ContentType": "application/x-recordio", "SplitType": "RecordIO"},
        )
    )
    desc = finish(sm, "tj-recordio")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert get(server, tmp_path, "s3://batch-out/rio/data.rec.out").split() == [b"alpha", b"be", b"gamma!!!"]


def test_filters_and_join(server: Server, sm: Any, batch_models: str, tmp_path: Path) -> None:
    put(server, tmp_path, "s3://batch-in/join/data.csv", b"100,1,2\n200,3,4\n")
    sm.create_transform_job(
        **job(
            "tj-join",
            "s3://batch-in/join",
            "s3://batch-out/join",
            BatchStrategy="MultiRecord",
            TransformOutput={"Accept": "text/csv"},
            DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,3]"},
        )
    )
    desc = finish(sm, "tj-join")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert rows(get(server, tmp_path, "s3://batch-out/join/data.csv.out")) == [["100", "3"], ["200", "7"]]


def test_container_error_fails_the_job_and_uploads_nothing_partial(
    server: Server, sm: Any, batch_models: str, tmp_path: Path
) -> None:
    put(server, tmp_path, "s3://batch-in/err/bad.csv", b"1,2\nERROR\n")
    sm.create_transform_job(
        **job("tj-error", "s3://batch-in/err", "s3://batch-out/err", BatchStrategy="SingleRecord")
    )
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="tj-error", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    desc = sm.describe_transform_job(TransformJobName="tj-error")
    assert desc["TransformJobStatus"] == "Failed"
    assert "s3://batch-in/err/bad.csv" in desc["FailureReason"] and "500" in desc["FailureReason"]
    assert "cannot score a line" in desc["FailureReason"]
    result = server.homeport(
        "cp",
        "s3://batch-out/err/bad.csv.out",
        str(tmp_path / "x"),
        "--data-dir",
        str(server.data_dir),
        check=False,
    )
    assert result.returncode != 0  # nothing partial was uploaded


def test_stop(server: Server, sm: Any, batch_models: str, tmp_path: Path) -> None:
    put(server, tmp_path, "s3://batch-in/slow/slow.csv", b"SLEEP\n")
    sm.create_transform_job(**job("tj-stop", "s3://batch-in/slow", "s3://batch-out/slow"))
    deadline = time.time() + 60
    while (
        "TransformStartTime" not in sm.describe_transform_job(TransformJobName="tj-stop")
        and time.time() < deadline
    ):
        time.sleep(0.2)
    time.sleep(3)  # the instance is up and the SLEEP request is in flight
    sm.stop_transform_job(TransformJobName="tj-stop")
    assert sm.describe_transform_job(TransformJobName="tj-stop")["TransformJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    desc = finish(sm, "tj-stop", timeout=60)
    assert desc["TransformJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as exc:
        sm.stop_transform_job(TransformJobName="tj-stop")
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_execution_parameters_and_environment(
    server: Server, sm: Any, batch_models: str, tmp_path: Path
) -> None:
    put(server, tmp_path, "s3://batch-in/params/data.csv", b"1,1\n2,2\n3,3\n")
    sm.create_transform_job(
        **job("tj-params", "s3://batch-in/params", "s3://batch-out/params", model="batch-offers")
    )
    desc = finish(sm, "tj-params")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    out = rows(get(server, tmp_path, "s3://batch-out/params/data.csv.out"))
    assert {r[1] for r in out} == {"1"}  # the container's SINGLE_RECORD offer was honoured
    put(server, tmp_path, "s3://batch-in/env/env.csv", b"ENV\n")
    sm.create_transform_job(
        **job(
            "tj-env",
            "s3://batch-in/env",
            "s3://batch-out/env",
            BatchStrategy="MultiRecord",
            MaxPayloadInMB=2,
            MaxConcurrentTransforms=3,
        )
    )
    assert finish(sm, "tj-env")["TransformJobStatus"] == "Completed"
    env = json.loads(get(server, tmp_path, "s3://batch-out/env/env.csv.out"))
    assert env["SAGEMAKER_BATCH"] == "true"
    assert env["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    assert env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "2"
    assert env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "3"


def test_two_instances_share_the_work(server: Server, sm: Any, batch_models: str, tmp_path: Path) -> None:
    for i in range(6):
        put(
            server,
            tmp_path,
            f"s3://batch-in/two/part-{i}.csv",
            "\n".join(f"{i},{j}" for j in range(20)).encode(),
        )
    sm.create_transform_job(
        **job(
            "tj-two",
            "s3://batch-in/two",
            "s3://batch-out/two",
            BatchStrategy="SingleRecord",
            MaxConcurrentTransforms=2,
            TransformResources={"InstanceCount": 2},
        )
    )
    from e2e_support import HOMEPORT

    cli = subprocess.run(
        [HOMEPORT, "transform", "tj-two", "--endpoint-url", server.url],
        capture_output=True,
        text=True,
        env=server.env(),
        timeout=180,
    )
    assert cli.returncode == 0, cli.stderr
    assert "6/6" in cli.stderr and "120 records" in cli.stderr and "tj-two: Completed" in cli.stderr
    desc = finish(sm, "tj-two", timeout=180)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    instances = set()
    for i in range(6):
        out = rows(get(server, tmp_path, f"s3://batch-out/two/part-{i}.csv.out"))
        assert [float(r[0]) for r in out] == [float(i + j) for j in range(20)]
        instances |= {r[2] for r in out}
    assert len(instances) == 2


def test_aws_cli_transform(server: Server, batch_models: str, tmp_path: Path) -> None:
    put(server, tmp_path, "s3://batch-in/cli/data.csv", b"4,4\n")
    spec = job("tj-cli", "s3://batch-in/cli", "s3://batch-out/cli")
    base = [AWS, "--endpoint-url", server.url, "--region", "us-east-1", "sagemaker"]
    subprocess.run(
        [*base, "create-transform-job", "--cli-input-json", json.dumps(spec)],
        check=True,
        capture_output=True,
        env=server.env(),
        timeout=120,
    )
    subprocess.run(
        [*base, "wait", "transform-job-completed-or-stopped", "--transform-job-name", "tj-cli"],
        check=True,
        capture_output=True,
        env=server.env(),
        timeout=300,
    )
    assert rows(get(server, tmp_path, "s3://batch-out/cli/data.csv.out"))[0][0] == "8"


def test_max_payload_zero_streams_whole_objects(
    server: Server, sm: Any, batch_models: str, tmp_path: Path
) -> None:
    lines = 2_000_000  # 8 MB: more than the 6 MB a single request may otherwise carry
    put(server, tmp_path, "s3://batch-in/stream/big.csv", b"1,2\n" * lines)
    put(server, tmp_path, "s3://batch-in/stream/small.csv", b"5,5\n")
    sm.create_transform_job(
        **job(
            "tj-stream",
            "s3://batch-in/stream",
            "s3://batch-out/stream",
            MaxPayloadInMB=0,
            TransformInput={"SplitType": "None"},
        )
    )
    desc = finish(sm, "tj-stream", timeout=240)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    big = get(server, tmp_path, "s3://batch-out/stream/big.csv.out").splitlines()
    assert len(big) == lines
    assert big[0].split(b",")[:2] == [b"3", str(lines).encode()]  # the whole object arrived in one request
    assert rows(get(server, tmp_path, "s3://batch-out/stream/small.csv.out"))[0][:2] == ["10", "1"]
