"""CloudWatch Logs on the same URL: a training job's log through boto3 and ``aws logs tail``."""

from __future__ import annotations

import json
import subprocess
import sys
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
    """The AWS CLI here is v1 (no ``aws logs tail``): its ``filter-log-events`` reads the job's log."""
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
