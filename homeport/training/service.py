"""Training-job operations: the business rules behind Create/Describe/List/Stop.

Generic shape validation already happened at the API edge; this module checks what the
service model cannot express, stores the job and hands it to the scheduler.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from homeport.config import Settings
from homeport.errors import AlreadyExistsError, NotFoundError, ResourceInUse, ValidationException
from homeport.store.database import Store
from homeport.store.records import TrainingJobQuery, TrainingJobRecord
from homeport.training import metrics
from homeport.training.runner import job_key
from homeport.training.scheduler import JobScheduler
from homeport.training.states import ALLOWED, JobStatus, Secondary, is_terminal, new_transitions, transition

# Real SageMaker answers a missing training job with this ValidationException (not the
# ResourceNotFound its model declares); botocore's waiter and the SDK rely on it.
NOT_FOUND = "Requested resource not found."
DEFAULT_MAX_RUNTIME = 86400
MAX_RUNTIME_LIMIT = 28 * 86400  # a service rule, not in the service model


def _defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults SageMaker reports back in DescribeTrainingJob."""
    spec.setdefault("StoppingCondition", {}).setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
    algorithm = spec["AlgorithmSpecification"]
    algorithm.setdefault("EnableSageMakerMetricsTimeSeries", False)
    resource = spec.setdefault("ResourceConfig", {})
    resource.setdefault("InstanceCount", 1)
    resource.setdefault("VolumeSizeInGB", 30)
    spec.setdefault("EnableNetworkIsolation", False)
    spec.setdefault("EnableInterContainerTrafficEncryption", False)
    spec.setdefault("EnableManagedSpotTraining", False)
    for channel in spec.get("InputDataConfig", []):
        channel.setdefault("RecordWrapperType", "None")
        channel.setdefault("CompressionType", "None")
        s3 = channel.get("DataSource", {}).get("S3DataSource")
        if s3 is not None:
            s3.setdefault("S3DataDistributionType", "FullyReplicated")
    return spec


class TrainingService:
    def __init__(self, settings: Settings, store: Store, scheduler: JobScheduler) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler

    # -- create --------------------------------------------------------------------------

    def _check(self, spec: dict[str, Any]) -> None:
        algorithm = spec.get("AlgorithmSpecification")
        if algorithm is None:
            raise ValidationException("AlgorithmSpecification is required for a training job.")
        if algorithm.get("AlgorithmName"):
            raise ValidationException(
                "AlgorithmSpecification.AlgorithmName is not supported by this Homeport server yet; "
                "use AlgorithmSpecification.TrainingImage."
            )
        if not algorithm.get("TrainingImage"):
            raise ValidationException(
                "Either AlgorithmSpecification.TrainingImage or AlgorithmSpecification.AlgorithmName "
                "is required."
            )
        modes = {algorithm.get("TrainingInputMode")} | {
            c.get("InputMode") for c in spec.get("InputDataConfig", [])
        }
        if "Pipe" in modes:
            raise ValidationException(
                "TrainingInputMode Pipe is not supported by Homeport; use File or FastFile."
            )
        names = [c["ChannelName"] for c in spec.get("InputDataConfig", [])]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationException(f"Channel names must be unique; duplicated: {', '.join(duplicates)}.")
        count = spec.get("ResourceConfig", {}).get("InstanceCount", 1)
        if count != 1:
            raise ValidationException(
                f"ResourceConfig.InstanceCount {count} is not supported by this Homeport runtime: "
                "training jobs run on one instance."
            )
        if spec.get("ResourceConfig", {}).get("InstanceGroups"):
            raise ValidationException("ResourceConfig.InstanceGroups is not supported by Homeport.")
        for channel in spec.get("InputDataConfig", []):
            if "S3DataSource" not in channel.get("DataSource", {}):
                raise ValidationException(
                    f"Channel {channel['ChannelName']}: only DataSource.S3DataSource is supported "
                    "by Homeport."
                )
            if channel["DataSource"]["S3DataSource"].get("S3DataType") not in ("S3Prefix", "ManifestFile"):
                raise ValidationException(
                    f"Channel {channel['ChannelName']}: S3DataType must be S3Prefix or ManifestFile "
                    "on Homeport."
                )
        max_runtime = spec.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
        if max_runtime > MAX_RUNTIME_LIMIT:
            raise ValidationException(
                f"1 validation error detected: Value '{max_runtime}' at "
                "'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
                f"Member must have value less than or equal to {MAX_RUNTIME_LIMIT}"
            )
        problem = metrics.compile_error(spec)
        if problem:
            raise ValidationException(problem)

    def create(self, request: dict[str, Any]) -> TrainingJobRecord:
        spec = _defaults(copy.deepcopy({k: v for k, v in request.items() if k != "Tags"}))
        self._check(spec)
        name = spec["TrainingJobName"]
        now = time.time()
        rec = TrainingJobRecord(
            name=name,
            arn=self.settings.arn("training-job", name),
            status=JobStatus.IN_PROGRESS.value,
            secondary_status=Secondary.STARTING.value,
            creation_time=now,
            last_modified_time=now,
            spec=spec,
            transitions=new_transitions(now),
            model_artifacts=str(spec["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
            + f"/{name}/output/model.tar.gz",
        )
        try:
            self.store.insert_training_job(rec)
        except AlreadyExistsError as exc:
            raise ResourceInUse(exc.message) from exc
        tags = request.get("Tags") or []
        if tags:
            self.store.add_tags(rec.arn, [(t["Key"], t["Value"]) for t in tags])
        if self.scheduler.saturated():
            rec = self.store.update_training_job(name, lambda r: transition(r, Secondary.PENDING))
        self.scheduler.submit(job_key(name))
        return rec

    # -- read ----------------------------------------------------------------------------

    def get(self, name: str) -> TrainingJobRecord:
        rec = self.store.get_training_job(name)
        if rec is None:
            raise NotFoundError(NOT_FOUND)
        return rec

    def list(self, query: TrainingJobQuery) -> tuple[list[TrainingJobRecord], str | None]:
        try:
            return self.store.list_training_jobs(query)
        except ValueError as exc:
            raise ValidationException(str(exc)) from exc

    # -- stop ----------------------------------------------------------------------------

    def stop(self, name: str) -> None:
        def request(rec: TrainingJobRecord) -> None:
            if is_terminal(rec.status):
                raise ValidationException(
                    f"The request was rejected because the training job is in status {rec.status}."
                )
            rec.stop_requested = True
            if Secondary.STOPPING in ALLOWED[Secondary(rec.secondary_status)]:
                transition(rec, Secondary.STOPPING)

        try:
            self.store.update_training_job(name, request)
        except KeyError as exc:
            raise NotFoundError(NOT_FOUND) from exc
        self.scheduler.request_stop(job_key(name))
