"""The wire: errors, validation, listing, pagination and tags, as boto3 and raw HTTP see them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError, ParamValidationError
from e2e_support import ROLE, Server, training_request, wait_for


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def test_describe_missing_job_is_a_validation_exception(sm: Any) -> None:
    with pytest.raises(ClientError) as exc:
        sm.describe_training_job(TrainingJobName="never-created")
    assert error_of(exc) == ("ValidationException", "Requested resource not found.")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert exc.value.response["ResponseMetadata"]["RequestId"]


def test_waiter_fails_on_missing_job(sm: Any) -> None:
    from botocore.exceptions import WaiterError

    with pytest.raises(WaiterError) as exc:
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName="never-created", WaiterConfig={"Delay": 1, "MaxAttempts": 2}
        )
    assert "ValidationException" in str(exc.value)


def test_duplicate_name_is_resource_in_use(sm: Any) -> None:
    sm.create_training_job(**training_request("dup-job"))
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**training_request("DUP-job"))  # names are unique case-insensitively
    code, message = error_of(exc)
    assert code == "ResourceInUse"
    assert "arn:aws:sagemaker:us-east-1:123456789012:training-job/dup-job" in message
    wait_for(sm, "dup-job")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"TrainingJobName": "bad_name!"},
            "Value 'bad_name!' at 'trainingJobName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern",
        ),
        (
            {"ResourceConfig": {"InstanceType": "gpu-box-1", "InstanceCount": 1, "VolumeSizeInGB": 1}},
            "Value 'gpu-box-1' at 'resourceConfig.instanceType' failed to satisfy constraint: "
            "Member must satisfy enum value set",
        ),
        (
            # botocore checks minimums client-side but not maximums: the server must.
            {"StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxPendingTimeInSeconds": 2419201}},
            "Value '2419201' at 'stoppingCondition.maxPendingTimeInSeconds' failed to satisfy constraint: "
            "Member must have value less than or equal to 2419200",
        ),
        (
            {"OutputDataConfig": {"S3OutputPath": "ftp://x/y"}},
            "at 'outputDataConfig.s3OutputPath' failed to satisfy constraint",
        ),
    ],
)
def test_validation_errors_name_the_member(sm: Any, overrides: dict[str, Any], expected: str) -> None:
    request = training_request("valid-name", **overrides)
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**request)
    code, message = error_of(exc)
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: "), message
    assert expected in message


def test_missing_required_members_over_raw_http(server: Server) -> None:
    # botocore refuses to send these, so speak the wire protocol directly.
    response = requests.post(
        server.url + "/",
        data=json.dumps({"TrainingJobName": "x"}),
        headers={"X-Amz-Target": "SageMaker.CreateTrainingJob", "Content-Type": "application/x-amz-json-1.1"},
        timeout=10,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["__type"] == "ValidationException"
    assert body["message"].startswith("2 validation errors detected: ")
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in body["message"]
    assert (
        "Value null at 'outputDataConfig' failed to satisfy constraint: Member must not be null"
        in body["message"]
    )
    assert response.headers["x-amzn-RequestId"]


def test_unknown_operation_and_bad_json(server: Server) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    r = requests.post(
        server.url + "/", data="{}", headers={**headers, "X-Amz-Target": "SageMaker.MakeCoffee"}, timeout=10
    )
    assert r.status_code == 400 and r.json()["__type"] == "UnknownOperationException"
    r = requests.post(
        server.url + "/",
        data="{not json",
        headers={**headers, "X-Amz-Target": "SageMaker.ListTrainingJobs"},
        timeout=10,
    )
    assert r.status_code == 400 and r.json()["__type"] == "SerializationException"


def test_client_side_validation_still_applies(sm: Any) -> None:
    with pytest.raises(ParamValidationError):
        sm.create_training_job(**training_request("x", HyperParameters={"a": 1}))


def test_pipe_mode_and_multi_instance_are_refused_clearly(sm: Any) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(
            **training_request(
                "pipe-job", AlgorithmSpecification={"TrainingImage": "scripted", "TrainingInputMode": "Pipe"}
            )
        )
    assert error_of(exc)[0] == "ValidationException" and "Pipe" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(
            **training_request(
                "multi-job",
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1},
            )
        )
    assert "InstanceCount" in error_of(exc)[1]


def test_list_pagination_filters_and_sort(sm: Any) -> None:
    prefix = f"lst{int(time.time())}"
    names = [f"{prefix}-{i}" for i in range(7)]
    before = time.time()
    for name in names:
        sm.create_training_job(**training_request(name, HyperParameters={"behaviour": "succeed"}))
    for name in names:
        wait_for(sm, name)
    seen: list[str] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {
            "NameContains": prefix,
            "MaxResults": 3,
            "SortBy": "Name",
            "SortOrder": "Ascending",
        }
        if token:
            kwargs["NextToken"] = token
        page = sm.list_training_jobs(**kwargs)
        assert len(page["TrainingJobSummaries"]) <= 3
        seen += [s["TrainingJobName"] for s in page["TrainingJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == sorted(names)
    # the paginator walks the same pages
    paginator = sm.get_paginator("list_training_jobs")
    pages = paginator.paginate(NameContains=prefix.upper(), PaginationConfig={"PageSize": 2})
    assert sorted(s["TrainingJobName"] for p in pages for s in p["TrainingJobSummaries"]) == sorted(names)
    desc = sm.list_training_jobs(NameContains=prefix, SortBy="CreationTime", SortOrder="Descending")
    assert [s["TrainingJobName"] for s in desc["TrainingJobSummaries"]] == list(reversed(names))
    summary = desc["TrainingJobSummaries"][0]
    assert set(summary) >= {
        "TrainingJobName",
        "TrainingJobArn",
        "CreationTime",
        "TrainingJobStatus",
        "LastModifiedTime",
        "SecondaryStatus",
    }
    assert sm.list_training_jobs(NameContains=prefix, StatusEquals="Failed")["TrainingJobSummaries"] == []
    completed = sm.list_training_jobs(NameContains=prefix, StatusEquals="Completed", MaxResults=100)
    assert len(completed["TrainingJobSummaries"]) == 7
    assert sm.list_training_jobs(NameContains=prefix, CreationTimeBefore=before)["TrainingJobSummaries"] == []
    assert (
        len(
            sm.list_training_jobs(NameContains=prefix, CreationTimeAfter=before, MaxResults=100)[
                "TrainingJobSummaries"
            ]
        )
        == 7
    )
    with pytest.raises(ClientError) as exc:
        sm.list_training_jobs(SortOrder="Sideways")
    assert "Member must satisfy enum value set" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        sm.list_training_jobs(MaxResults=101)
    assert "maxResults" in error_of(exc)[1]


def test_tags_on_a_job(sm: Any) -> None:
    arn = sm.create_training_job(**training_request("tagged-job"))["TrainingJobArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "3"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}]
    many = [{"Key": f"k{i:02d}", "Value": str(i)} for i in range(48)]
    sm.add_tags(ResourceArn=arn, Tags=many)  # 50 tags: the per-resource limit
    page = sm.list_tags(ResourceArn=arn, MaxResults=50)
    assert len(page["Tags"]) == 50 and "NextToken" not in page
    with pytest.raises(ClientError) as exc:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "one-too-many", "Value": "x"}])
    assert error_of(exc)[0] == "ResourceLimitExceeded"
    sm.delete_tags(ResourceArn=arn, TagKeys=[t["Key"] for t in many])
    sm.delete_tags(ResourceArn=arn, TagKeys=["a"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ClientError) as exc:
        sm.list_tags(ResourceArn=arn.replace("tagged-job", "no-such-job"))
    assert error_of(exc)[0] == "ValidationException"
    wait_for(sm, "tagged-job")


def test_health_and_role_echo(server: Server, sm: Any) -> None:
    assert requests.get(server.url + "/_homeport/health", timeout=5).status_code == 200
    sm.create_training_job(**training_request("echo-job"))
    desc = sm.describe_training_job(TrainingJobName="ECHO-job")  # lookups are case-insensitive
    assert desc["RoleArn"] == ROLE and desc["TrainingJobName"] == "echo-job"
    assert desc["StoppingCondition"]["MaxRuntimeInSeconds"] == 600
    assert isinstance(desc["CreationTime"].timestamp(), float)
    wait_for(sm, "echo-job")


def test_max_runtime_over_28_days_is_refused(sm: Any) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(
            **training_request("too-long-limit", StoppingCondition={"MaxRuntimeInSeconds": 2419201})
        )
    code, message = error_of(exc)
    assert code == "ValidationException" and "stoppingCondition.maxRuntimeInSeconds" in message
