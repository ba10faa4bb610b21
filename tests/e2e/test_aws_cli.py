"""The AWS CLI against the live server: create, wait, describe, list, stop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from e2e_support import ROLE, Server, wait_for

AWS = str(Path(sys.executable).parent / "aws")


def aws(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [AWS, "--endpoint-url", server.url, "--region", "us-east-1", "--output", "json", *args],
        capture_output=True,
        text=True,
        env=server.env(),
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed: {result.stderr}")
    return result


def test_aws_cli_training_job_round_trip(server: Server, data_bucket: str) -> None:
    spec: dict[str, Any] = {
        "TrainingJobName": "cli-job",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "scripted", "TrainingInputMode": "File"},
        "HyperParameters": {"behaviour": "succeed"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{data_bucket}/train/"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://output/cli"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    created = json.loads(
        aws(server, "sagemaker", "create-training-job", "--cli-input-json", json.dumps(spec)).stdout
    )
    assert created["TrainingJobArn"].endswith(":training-job/cli-job")
    # The CLI waiter polls every 120 s: let the job end first, so its first poll sees the end.
    wait_for(server.sagemaker(), "cli-job")
    aws(server, "sagemaker", "wait", "training-job-completed-or-stopped", "--training-job-name", "cli-job")
    desc = json.loads(
        aws(server, "sagemaker", "describe-training-job", "--training-job-name", "cli-job").stdout
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == "s3://output/cli/cli-job/output/model.tar.gz"
    listed = json.loads(aws(server, "sagemaker", "list-training-jobs", "--name-contains", "cli-job").stdout)
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == ["cli-job"]
    missing = aws(server, "sagemaker", "describe-training-job", "--training-job-name", "nope", check=False)
    assert missing.returncode != 0
    assert "ValidationException" in missing.stderr and "Requested resource not found." in missing.stderr
    bad = aws(
        server,
        "sagemaker",
        "create-training-job",
        "--cli-input-json",
        json.dumps(
            {
                **spec,
                "TrainingJobName": "cli-bad",
                "ResourceConfig": {"InstanceType": "gpu-box-1", "InstanceCount": 1, "VolumeSizeInGB": 5},
            }
        ),
        check=False,
    )
    assert bad.returncode != 0 and "resourceConfig.instanceType" in bad.stderr
