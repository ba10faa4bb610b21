"""The AWS CLI with nothing but ``AWS_ENDPOINT_URL``: ``s3``, ``sagemaker``, ``logs`` and
``sagemaker-runtime`` all reach the one Homeport URL, in one session of work.

This is the venv's CLI (v1, from PyPI, which honours ``AWS_ENDPOINT_URL``); ``aws logs tail``
(v2 only) is tested with Debian's v2 in test_cloudwatch_logs.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import ROLE, SCRIPTED, Server, start_server, training_request

AWS = str(Path(sys.executable).parent / "aws")
ECHO = Path(__file__).parent / "images" / "echo_flask"


@pytest.fixture(scope="module")
def one_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("one-url"))
    try:
        srv.add_image("scripted", SCRIPTED)
        srv.add_image("echo-flask", ECHO, "--requirements", str(ECHO / "requirements.txt"))
        yield srv
    finally:
        srv.stop()


def aws(srv: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = srv.env()
    # No --endpoint-url anywhere: the one variable routes every service.
    env.update(
        AWS_ENDPOINT_URL=srv.url,
        AWS_ACCESS_KEY_ID="homeport",
        AWS_SECRET_ACCESS_KEY="homeport",
        AWS_DEFAULT_REGION="us-east-1",
    )
    result = subprocess.run(
        [AWS, "--output", "json", *args], capture_output=True, text=True, env=env, timeout=180
    )
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed: {result.stderr}")
    return result


def wait_status(srv: Server, describe: list[str], field: str, done: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = json.loads(aws(srv, "sagemaker", *describe).stdout)
        if doc[field] in done:
            return dict(doc)
        assert time.monotonic() < deadline, doc
        time.sleep(0.5)


def test_aws_cli_s3_sagemaker_logs_and_runtime_on_one_url(one_url: Server, tmp_path: Path) -> None:
    srv = one_url
    started_ms = int(time.time() * 1000) - 1000
    # s3: a bucket, a training set, listed back.
    aws(srv, "s3", "mb", "s3://one-url")
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-a.csv").write_text("1,2,3\n")
    (data / "part-b.csv").write_text("4,5,6\n")
    aws(srv, "s3", "sync", str(data), "s3://one-url/train/")
    listed = aws(srv, "s3", "ls", "s3://one-url/train/").stdout
    assert "part-a.csv" in listed and "part-b.csv" in listed

    # sagemaker: a training job over that data.
    channel = {
        "ChannelName": "train",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://one-url/train/"}},
    }
    spec = training_request(
        "one-url-job",
        InputDataConfig=[channel],
        OutputDataConfig={"S3OutputPath": "s3://one-url/output"},
    )
    aws(srv, "sagemaker", "create-training-job", "--cli-input-json", json.dumps(spec))
    job = wait_status(
        srv,
        ["describe-training-job", "--training-job-name", "one-url-job"],
        "TrainingJobStatus",
        {"Completed", "Failed", "Stopped"},
    )
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://one-url/output/one-url-job/output/model.tar.gz"
    # ... whose artifact the s3 commands see and fetch.
    aws(srv, "s3", "cp", artifact, str(tmp_path / "model.tar.gz"))
    assert (tmp_path / "model.tar.gz").stat().st_size > 0

    # logs: the job's stream under SageMaker's group, read as `aws logs tail` would.
    group = "/aws/sagemaker/TrainingJobs"
    streams = json.loads(
        aws(
            srv,
            "logs",
            "describe-log-streams",
            "--log-group-name",
            group,
            "--log-stream-name-prefix",
            "one-url-job/",
        ).stdout
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith("one-url-job/algo-1-"), streams
    events = json.loads(
        aws(
            srv,
            "logs",
            "filter-log-events",
            "--log-group-name",
            group,
            "--start-time",
            str(started_ms),
            "--filter-pattern",
            "epoch",
        ).stdout
    )["events"]
    messages = [e["message"] for e in events if e["logStreamName"].startswith("one-url-job/")]
    assert [m.split()[1] for m in messages] == ["0", "1", "2"], messages
    head = json.loads(
        aws(
            srv,
            "logs",
            "get-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            streams[0]["logStreamName"],
            "--start-from-head",
        ).stdout
    )["events"]
    assert any("contract recorded" in e["message"] for e in head)

    # sagemaker + sagemaker-runtime: the echo image behind an endpoint, invoked.
    model_dir = tmp_path / "echo-model"
    model_dir.mkdir()
    (model_dir / "model.txt").write_text("one-url-model\n")
    subprocess.run(["tar", "-czf", str(tmp_path / "echo.tar.gz"), "-C", str(model_dir), "."], check=True)
    aws(srv, "s3", "cp", str(tmp_path / "echo.tar.gz"), "s3://one-url/models/echo.tar.gz")
    aws(
        srv,
        "sagemaker",
        "create-model",
        "--model-name",
        "one-url-echo",
        "--execution-role-arn",
        ROLE,
        "--primary-container",
        json.dumps({"Image": "echo-flask", "ModelDataUrl": "s3://one-url/models/echo.tar.gz"}),
    )
    aws(
        srv,
        "sagemaker",
        "create-endpoint-config",
        "--endpoint-config-name",
        "one-url-echo",
        "--production-variants",
        json.dumps(
            [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "one-url-echo",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ]
        ),
    )
    aws(
        srv,
        "sagemaker",
        "create-endpoint",
        "--endpoint-name",
        "one-url-echo",
        "--endpoint-config-name",
        "one-url-echo",
    )
    try:
        endpoint = wait_status(
            srv,
            ["describe-endpoint", "--endpoint-name", "one-url-echo"],
            "EndpointStatus",
            {"InService", "Failed"},
        )
        assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
        out = tmp_path / "answer.json"
        meta = json.loads(
            aws(
                srv,
                "sagemaker-runtime",
                "invoke-endpoint",
                "--endpoint-name",
                "one-url-echo",
                "--content-type",
                "text/csv",
                "--body",
                "1,2,3",
                str(out),
            ).stdout
        )
        assert meta["InvokedProductionVariant"] == "AllTraffic"
        answer = json.loads(out.read_text())
        assert answer["model"] == "one-url-model" and answer["content_type"] == "text/csv"
        # The endpoint's log group appears once it has logged.
        groups = json.loads(
            aws(srv, "logs", "describe-log-groups", "--log-group-name-prefix", "/aws/sagemaker/").stdout
        )["logGroups"]
        assert "/aws/sagemaker/Endpoints/one-url-echo" in {g["logGroupName"] for g in groups}
    finally:
        aws(srv, "sagemaker", "delete-endpoint", "--endpoint-name", "one-url-echo", check=False)
        aws(srv, "sagemaker", "delete-endpoint-config", "--endpoint-config-name", "one-url-echo", check=False)
        aws(srv, "sagemaker", "delete-model", "--model-name", "one-url-echo", check=False)
    gone = aws(srv, "sagemaker", "describe-endpoint", "--endpoint-name", "one-url-echo", check=False)
    assert gone.returncode != 0 and "Could not find endpoint" in gone.stderr
    # s3 rb --force empties and removes the bucket through the same URL.
    aws(srv, "s3", "rb", "s3://one-url", "--force")
    assert "one-url" not in aws(srv, "s3", "ls").stdout.split()
