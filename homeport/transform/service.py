"""Transform-job operations: the business rules behind Create/Describe/List/Stop."""

from __future__ import annotations

import builtins
import copy
import time
from typing import Any

from homeport.config import Settings
from homeport.errors import AlreadyExistsError, NotFoundError, ResourceInUse, ValidationException
from homeport.store.database import Store
from homeport.store.records import TrainingJobQuery, TransformJobRecord
from homeport.training.scheduler import JobScheduler
from homeport.transform.states import TERMINAL, TransformStatus

NOT_FOUND = "Could not find requested job with name {name}"
MAX_PAYLOAD_PRODUCT = 100  # MaxConcurrentTransforms × MaxPayloadInMB


class TransformService:
    def __init__(self, settings: Settings, store: Store, scheduler: JobScheduler) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler

    def create(self, request: dict[str, Any]) -> TransformJobRecord:
        spec = copy.deepcopy({k: v for k, v in request.items() if k != "Tags"})
        if self.store.get_model(spec["ModelName"]) is None:
            raise ValidationException(
                f'Could not find model "{self.settings.arn("model", spec["ModelName"])}".'
            )
        concurrent = int(spec.get("MaxConcurrentTransforms") or 1)
        payload = int(spec.get("MaxPayloadInMB", 6))
        if concurrent * payload > MAX_PAYLOAD_PRODUCT:
            raise ValidationException(
                f"MaxConcurrentTransforms ({concurrent}) × MaxPayloadInMB ({payload}) must not exceed "
                f"{MAX_PAYLOAD_PRODUCT} MB."
            )
        if spec["TransformInput"]["DataSource"].get("S3DataSource", {}).get("S3DataType") not in (
            "S3Prefix",
            "ManifestFile",
        ):
            raise ValidationException(
                "TransformInput S3DataType must be S3Prefix or ManifestFile on Homeport."
            )
        name = spec["TransformJobName"]
        now = time.time()
        rec = TransformJobRecord(
            name=name,
            arn=self.settings.arn("transform-job", name),
            status=TransformStatus.IN_PROGRESS.value,
            creation_time=now,
            last_modified_time=now,
            spec=spec,
        )
        try:
            self.store.insert_transform_job(rec)
        except AlreadyExistsError as exc:
            raise ResourceInUse(exc.message) from exc
        tags = request.get("Tags") or []
        if tags:
            self.store.add_tags(rec.arn, [(t["Key"], t["Value"]) for t in tags])
        self.scheduler.submit(name.lower())
        return rec

    def get(self, name: str) -> TransformJobRecord:
        rec = self.store.get_transform_job(name)
        if rec is None:
            raise NotFoundError(NOT_FOUND.format(name=name))
        return rec

    def list(self, query: TrainingJobQuery) -> tuple[builtins.list[TransformJobRecord], str | None]:
        try:
            return self.store.list_transform_jobs(query)
        except ValueError as exc:
            raise ValidationException(str(exc)) from exc

    def stop(self, name: str) -> None:
        def request(rec: TransformJobRecord) -> None:
            if rec.status in TERMINAL:
                raise ValidationException(
                    f"The request was rejected because the transform job is in status {rec.status}."
                )
            rec.stop_requested = True
            if rec.status == TransformStatus.IN_PROGRESS:
                rec.status = TransformStatus.STOPPING.value
                rec.last_modified_time = time.time()

        try:
            self.store.update_transform_job(name, request)
        except KeyError as exc:
            raise NotFoundError(NOT_FOUND.format(name=name)) from exc
        self.scheduler.request_stop(name.lower())

    def settle_after_restart(self) -> builtins.list[str]:
        """Jobs an earlier server left active: their instances died with it. Stopped or Failed, saying why."""
        settled: builtins.list[str] = []
        for rec in self.store.transform_jobs_in(
            [TransformStatus.IN_PROGRESS.value, TransformStatus.STOPPING.value]
        ):
            if rec.transform_start_time is None and not rec.stop_requested:
                self.scheduler.submit(rec.name.lower())  # never started: run it now
                continue

            def settle(r: TransformJobRecord) -> None:
                r.last_modified_time = r.transform_end_time = time.time()
                if r.stop_requested:
                    r.status = TransformStatus.STOPPED.value
                else:
                    r.status = TransformStatus.FAILED.value
                    r.failure_reason = (
                        "InternalServerError: the Homeport server stopped while this transform job "
                        "was running; outputs of the objects it had finished are in S3OutputPath. "
                        "Run the job again."
                    )

            self.store.update_transform_job(rec.name, settle)
            settled.append(rec.name)
        return settled
