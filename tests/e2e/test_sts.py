"""STS GetCallerIdentity on the same URL as SageMaker: boto3 and the AWS CLI see the configured account."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from e2e_support import Server, start_server

AWS = str(Path(sys.executable).parent / "aws")


@pytest.fixture(scope="module")
def sts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("sts"), "--account", "210987654321")
    try:
        yield srv
    finally:
        srv.stop()


def test_get_caller_identity_with_boto3(sts_server: Server) -> None:
    sts = boto3.client(
        "sts",
        endpoint_url=sts_server.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    identity = sts.get_caller_identity()
    assert identity["Account"] == "210987654321"
    assert identity["Arn"] == "arn:aws:iam::210987654321:user/homeport"
    assert identity["UserId"]
    # The SageMaker API still answers on the same URL.
    assert sts_server.sagemaker().list_training_jobs()["TrainingJobSummaries"] == []


def test_get_caller_identity_with_the_aws_cli_and_aws_endpoint_url(sts_server: Server) -> None:
    env = sts_server.env()
    env["AWS_ENDPOINT_URL"] = sts_server.url
    result = subprocess.run(
        [AWS, "sts", "get-caller-identity", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Account"] == "210987654321"


def test_other_sts_actions_are_refused_in_the_sts_shape(sts_server: Server) -> None:
    sts = boto3.client(
        "sts",
        endpoint_url=sts_server.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn="arn:aws:iam::210987654321:role/r", RoleSessionName="session")
    assert info.value.response["Error"]["Code"] == "InvalidAction"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
