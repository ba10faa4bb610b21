"""Wire handlers for the training-job operations: request members in, response shapes out."""

from __future__ import annotations

from typing import Any

from homeport.api.list_filters import list_query
from homeport.api.operations import OperationTable
from homeport.store.records import TrainingJobQuery, TrainingJobRecord
from homeport.training.service import TrainingService

_NOT_ECHOED = {"TrainingJobName", "Tags"}


def describe_shape(rec: TrainingJobRecord) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in rec.spec.items() if k not in _NOT_ECHOED}
    # SageMaker always reports KmsKeyId ("" when none was given); Estimator.attach in the
    # Python SDK reads it unconditionally.
    out["OutputDataConfig"] = {"KmsKeyId": "", **rec.spec.get("OutputDataConfig", {})}
    out.update(
        TrainingJobName=rec.name,
        TrainingJobArn=rec.arn,
        ModelArtifacts={"S3ModelArtifacts": rec.model_artifacts or ""},
        TrainingJobStatus=rec.status,
        SecondaryStatus=rec.secondary_status,
        CreationTime=rec.creation_time,
        LastModifiedTime=rec.last_modified_time,
        SecondaryStatusTransitions=rec.transitions,
        FailureReason=rec.failure_reason,
        TrainingStartTime=rec.training_start_time,
        TrainingEndTime=rec.training_end_time,
    )
    if rec.final_metrics:
        out["FinalMetricDataList"] = rec.final_metrics
    if rec.training_start_time is not None and rec.training_end_time is not None:
        seconds = max(1, int(round(rec.training_end_time - rec.training_start_time)))
        out["TrainingTimeInSeconds"] = seconds
        out["BillableTimeInSeconds"] = seconds
    profiler = rec.spec.get("ProfilerConfig")
    if profiler is not None:
        out["ProfilingStatus"] = "Disabled" if profiler.get("DisableProfiler") else "Enabled"
    return out


def summary_shape(rec: TrainingJobRecord) -> dict[str, Any]:
    return {
        "TrainingJobName": rec.name,
        "TrainingJobArn": rec.arn,
        "CreationTime": rec.creation_time,
        "TrainingEndTime": rec.training_end_time,
        "LastModifiedTime": rec.last_modified_time,
        "TrainingJobStatus": rec.status,
        "SecondaryStatus": rec.secondary_status,
    }


def register(table: OperationTable, service: TrainingService) -> None:
    def create(params: dict[str, Any]) -> dict[str, Any]:
        return {"TrainingJobArn": service.create(params).arn}

    def describe(params: dict[str, Any]) -> dict[str, Any]:
        return describe_shape(service.get(params["TrainingJobName"]))

    def list_jobs(params: dict[str, Any]) -> dict[str, Any]:
        records, token = service.list(list_query(TrainingJobQuery, params))
        return {"TrainingJobSummaries": [summary_shape(r) for r in records], "NextToken": token}

    def stop(params: dict[str, Any]) -> dict[str, Any]:
        service.stop(params["TrainingJobName"])
        return {}

    table.register("CreateTrainingJob", create)
    table.register("DescribeTrainingJob", describe)
    table.register("ListTrainingJobs", list_jobs)
    table.register("StopTrainingJob", stop)
