"""CloudWatch Logs on the same URL: a training job's log through boto3 and ``aws logs tail``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from e2e_support import SCRIPTED, Server, start_server, training_request, wait_for

AWS = str(Path(sys.executable).parent / "aws")
GROUP = "/aws/sagemaker/TrainingJobs"
JOB = "cwlogs-job"


@pytest.fixture(scope="module")
def logs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("cwlogs"))
    try:
        srv.add_image("scripted", SCRIPTED)
        sm = srv.sagemaker()
        sm.create_training_job(**training_request(JOB))
        assert wait_for(sm, JOB)["TrainingJobStatus"] == "Completed"
        yield srv
    finally:
        srv.stop()


def _logs(srv: Server) -> Any:
    return boto3.client(
        "logs",
        endpoint_url=srv.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def _stream(logs: Any) -> str:
    resp = logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix=f"{JOB}/", orderBy="LogStreamName"
    )
    assert "nextToken" not in resp
    assert len(resp["logStreams"]) == 1
    name: str = resp["logStreams"][0]["logStreamName"]
    return name


def test_groups_and_streams(logs_server: Server) -> None:
    logs = _logs(logs_server)
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")["logGroups"]
    assert GROUP in [g["logGroupName"] for g in groups]
    stream = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{JOB}/")["logStreams"][0]
    assert stream["logStreamName"].startswith(f"{JOB}/algo-1-")
    assert stream["logStreamName"] == f"{JOB}/algo-1-{stream['firstEventTimestamp'] // 1000}"
    assert stream["lastEventTimestamp"] >= stream["firstEventTimestamp"]
    assert stream["arn"].startswith("arn:aws:logs:us-east-1:")
    assert _stream(logs) == stream["logStreamName"]
    # No streams under another prefix, and still no token.
    empty = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="nope/")
    assert empty["logStreams"] == [] and "nextToken" not in empty


def test_get_log_events_pages_until_the_token_repeats(logs_server: Server) -> None:
    logs = _logs(logs_server)
    name = _stream(logs)
    whole = logs.get_log_events(logGroupName=GROUP, logStreamName=name, startFromHead=True)
    messages = [e["message"] for e in whole["events"]]
    assert "contract recorded" in messages
    assert any(m.startswith("epoch 2 train-loss=") for m in messages)
    # Page two at a time: the forward token stops changing once the stream is read.
    paged: list[str] = []
    token = None
    for _ in range(100):
        kwargs: dict[str, Any] = {"nextToken": token} if token else {"startFromHead": True}
        resp = logs.get_log_events(logGroupName=GROUP, logStreamName=name, limit=2, **kwargs)
        paged += [e["message"] for e in resp["events"]]
        if resp["nextForwardToken"] == token:
            assert resp["events"] == []
            break
        token = resp["nextForwardToken"]
    else:
        raise AssertionError("forward token never repeated")
    assert paged == messages
    # Without startFromHead: the newest events, and a backward token to page back from.
    tail = logs.get_log_events(logGroupName=GROUP, logStreamName=name, limit=2)
    assert [e["message"] for e in tail["events"]] == messages[-2:]
    back = logs.get_log_events(
        logGroupName=GROUP, logStreamName=name, limit=2, nextToken=tail["nextBackwardToken"]
    )
    assert [e["message"] for e in back["events"]] == messages[-4:-2]


def test_filter_log_events(logs_server: Server) -> None:
    logs = _logs(logs_server)
    name = _stream(logs)
    resp = logs.filter_log_events(
        logGroupName=GROUP, logStreamNamePrefix=f"{JOB}/", filterPattern="train-loss"
    )
    assert [e["message"][:7] for e in resp["events"]] == ["epoch 0", "epoch 1", "epoch 2"]
    assert all(e["logStreamName"] == name for e in resp["events"])
    assert "nextToken" not in resp
    phrase = logs.filter_log_events(logGroupName=GROUP, filterPattern='"epoch 1 train"')
    assert len(phrase["events"]) == 1
    # Paging one at a time reaches every match, then the token goes away.
    seen, token = [], None
    while True:
        kwargs: dict[str, Any] = {"nextToken": token} if token else {}
        page = logs.filter_log_events(logGroupName=GROUP, filterPattern="epoch", limit=1, **kwargs)
        seen += [e["eventId"] for e in page["events"]]
        token = page.get("nextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 3


def test_missing_group_and_stream(logs_server: Server) -> None:
    logs = _logs(logs_server)
    with pytest.raises(ClientError) as err:
        logs.describe_log_streams(logGroupName="/aws/sagemaker/Nothing")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        logs.get_log_events(logGroupName=GROUP, logStreamName=f"{JOB}/algo-1-1")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        logs.get_log_events(logGroupName=GROUP, logStreamName=_stream(logs), nextToken="garbage")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    # The SageMaker API on the same URL is untouched.
    assert logs_server.sagemaker().describe_training_job(TrainingJobName=JOB)["TrainingJobName"] == JOB


def test_aws_cli_filter_log_events(logs_server: Server) -> None:
    """The venv's AWS CLI (v1) with AWS_ENDPOINT_URL: ``filter-log-events`` reads the job's log."""
    env = logs_server.env()
    env["AWS_ENDPOINT_URL"] = logs_server.url
    result = subprocess.run(
        [
            AWS,
            "logs",
            "filter-log-events",
            "--log-group-name",
            GROUP,
            "--log-stream-name-prefix",
            f"{JOB}/",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    messages = [e["message"] for e in json.loads(result.stdout)["events"]]
    assert "contract recorded" in messages
    assert any(m.startswith("epoch 2 train-loss=") for m in messages)


# AWS CLI v2 (Debian's awscli package, installed by scripts/setup.sh --test): it has `logs tail`.
# Its release predates AWS_ENDPOINT_URL, so the URL is given with --endpoint-url.
AWS_V2 = "/usr/bin/aws"


def _aws_v2(srv: Server, *args: str) -> list[str]:
    return [AWS_V2, "--endpoint-url", srv.url, "--region", "us-east-1", "logs", "tail", GROUP, *args]


def test_aws_cli_v2_logs_tail(logs_server: Server) -> None:
    version = subprocess.run([AWS_V2, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("aws-cli/2."), version.stdout + version.stderr
    result = subprocess.run(
        _aws_v2(logs_server, "--since", "1d", "--log-stream-name-prefix", f"{JOB}/", "--format", "short"),
        capture_output=True,
        text=True,
        env=logs_server.env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # short format: "<timestamp> <message>", in the job's order
    messages = [line.split(" ", 1)[1] for line in lines]
    assert "contract recorded" in messages
    epochs = [m for m in messages if m.startswith("epoch ")]
    assert [m.split()[1] for m in epochs] == ["0", "1", "2"]


def test_aws_cli_v2_logs_tail_follow_prints_new_lines(logs_server: Server) -> None:
    """``aws logs tail --follow`` keeps polling FilterLogEvents: a job started after it shows up."""
    env = logs_server.env()
    job = "cwlogs-follow"
    tail = subprocess.Popen(
        _aws_v2(logs_server, "--follow", "--log-stream-name-prefix", f"{job}/", "--format", "short"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        sm = logs_server.sagemaker()
        sm.create_training_job(**training_request(job))
        assert wait_for(sm, job)["TrainingJobStatus"] == "Completed"
        seen: list[str] = []
        assert tail.stdout is not None
        deadline = time.monotonic() + 60
        while not any(line.startswith("epoch 2") for line in seen):
            assert time.monotonic() < deadline, seen
            assert tail.poll() is None, tail.stderr.read() if tail.stderr else ""
            line = tail.stdout.readline()
            seen.append(line.rstrip("\n").split(" ", 1)[-1])
        assert "contract recorded" in seen
    finally:
        tail.kill()
        tail.wait(timeout=10)
