"""Wire handlers for the transform-job operations."""

from __future__ import annotations

from typing import Any

from homeport.api.list_filters import list_query
from homeport.api.operations import OperationTable
from homeport.store.records import TrainingJobQuery, TransformJobRecord
from homeport.transform.service import TransformService


def describe_shape(rec: TransformJobRecord) -> dict[str, Any]:
    out = {k: v for k, v in rec.spec.items() if k != "TransformJobName"}
    out.update(
        TransformJobName=rec.name,
        TransformJobArn=rec.arn,
        TransformJobStatus=rec.status,
        FailureReason=rec.failure_reason,
        CreationTime=rec.creation_time,
        TransformStartTime=rec.transform_start_time,
        TransformEndTime=rec.transform_end_time,
    )
    return out


def summary_shape(rec: TransformJobRecord) -> dict[str, Any]:
    return {
        "TransformJobName": rec.name,
        "TransformJobArn": rec.arn,
        "CreationTime": rec.creation_time,
        "TransformEndTime": rec.transform_end_time,
        "LastModifiedTime": rec.last_modified_time,
        "TransformJobStatus": rec.status,
        "FailureReason": rec.failure_reason,
    }


def register(table: OperationTable, service: TransformService) -> None:
    def create(p: dict[str, Any]) -> dict[str, Any]:
        return {"TransformJobArn": service.create(p).arn}

    def describe(p: dict[str, Any]) -> dict[str, Any]:
        return describe_shape(service.get(p["TransformJobName"]))

    def list_jobs(p: dict[str, Any]) -> dict[str, Any]:
        records, token = service.list(list_query(TrainingJobQuery, p))
        return {"TransformJobSummaries": [summary_shape(r) for r in records], "NextToken": token}

    def stop(p: dict[str, Any]) -> dict[str, Any]:
        service.stop(p["TransformJobName"])
        return {}

    table.register("CreateTransformJob", create)
    table.register("DescribeTransformJob", describe)
    table.register("ListTransformJobs", list_jobs)
    table.register("StopTransformJob", stop)
