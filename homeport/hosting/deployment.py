"""A deployment: the live serving instances of one endpoint configuration.

Built from an EndpointConfig (its models, images and model data resolved once), then grown
instance by instance. The controller owns deployments; this module only knows how to start,
wait for and stop instances, and how to describe a deployment to the router and to
DescribeEndpoint. Concurrency: instances of one deployment start in parallel threads; the
instance lists are only changed under the deployment's lock.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeport.hosting.instance import InstanceFailed, ServingInstance, StartCancelled
from homeport.hosting.model_data import ModelDataCache
from homeport.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute
from homeport.hosting.submit_dir import copy_for_instance, stage_submit_directory
from homeport.images.model import Image
from homeport.images.source import ImageSource
from homeport.logs.streams import LogStore, LogWriter
from homeport.runtimes.base import Runtime
from homeport.runtimes.instance_types import resources_for

LOG_GROUP = "Endpoints"
DEFAULT_STARTUP_TIMEOUT = 240.0  # SageMaker: /ping must pass within 4 minutes unless configured


class DeployError(Exception):
    """A deployment could not be brought up; the message becomes the endpoint's FailureReason."""


@dataclass
class VariantPlan:
    """Everything needed to start instances of one production variant."""

    name: str
    model_name: str
    image_ref: str
    image: Image
    model_dir: Path | None
    env: dict[str, str]
    weight: float
    desired_count: int
    instance_type: str
    startup_timeout: float
    resolution_time: float
    # The model's remote SAGEMAKER_SUBMIT_DIRECTORY, staged (each instance gets a copy).
    code_dir: Path | None = None
    instances: list[ServingInstance] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # instance key → consecutive failed pings


@dataclass
class Deployment:
    endpoint: str  # the endpoint's name as the client spelled it
    config_name: str
    variants: dict[str, VariantPlan]
    holds: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    log_group: str = LOG_GROUP  # "TransformJobs" for a batch transform's instances
    kind: str = "endpoint"  # "transform-job" for a batch transform's instances (a container label)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def key(self) -> str:
        return self.endpoint.lower()

    def all_instances(self) -> list[ServingInstance]:
        with self.lock:
            return [i for v in self.variants.values() for i in v.instances]

    def route(self) -> EndpointRoute:
        with self.lock:
            return EndpointRoute(
                name=self.key,
                variants=tuple(
                    VariantRoute(
                        name=v.name,
                        weight=v.weight,
                        instances=tuple(
                            InstanceRoute(i.key, a.netns_pid, a.port, a.host)
                            for i in v.instances
                            for a in (i.address,)
                        ),
                    )
                    for v in self.variants.values()
                ),
            )

    def summaries(self) -> list[dict[str, Any]]:
        """ProductionVariantSummary entries for DescribeEndpoint."""
        with self.lock:
            return [
                {
                    "VariantName": v.name,
                    "DeployedImages": [
                        {
                            "SpecifiedImage": v.image_ref,
                            "ResolvedImage": f"{v.image.name}:{v.image.tag}",
                            "ResolutionTime": v.resolution_time,
                        }
                    ],
                    "CurrentWeight": v.weight,
                    "DesiredWeight": v.weight,
                    "CurrentInstanceCount": len(v.instances),
                    "DesiredInstanceCount": v.desired_count,
                }
                for v in self.variants.values()
            ]


class InstanceFactory:
    """Starts and stops serving instances of a variant plan."""

    def __init__(
        self,
        runtime: Runtime,
        logs: LogStore,
        scratch_root: Path,
        region: str,
        stop_grace: float,
        services: dict[str, str] | None = None,
    ) -> None:
        self.runtime = runtime
        # How containers reach the object store (S3_ENDPOINT_URL, ...): under the model's Environment.
        self.services = dict(services or {})
        self.logs = logs
        self.scratch_root = scratch_root
        self.region = region
        self.stop_grace = stop_grace
        self._writers: dict[str, LogWriter] = {}

    def start(
        self, deployment: Deployment, plan: VariantPlan, stop: threading.Event | None = None
    ) -> ServingInstance:
        instance_id = uuid.uuid4().hex[:8]
        key = f"{deployment.key}/{plan.name}/{instance_id}"
        scratch = self.scratch_root / deployment.key / f"{plan.name}-{instance_id}"
        scratch.mkdir(parents=True, exist_ok=True)
        writer = self.logs.writer(deployment.log_group, f"{deployment.endpoint}/{plan.name}/{instance_id}")
        env = {**self.services, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region, **plan.env}
        code_dir = copy_for_instance(plan.code_dir, scratch) if plan.code_dir is not None else None
        instance = ServingInstance(
            key,
            self.runtime,
            plan.image,
            plan.model_dir,
            env,
            writer,
            scratch,
            code_dir=code_dir,
            variant=plan.name,
            resources=resources_for(plan.instance_type),
            labels={"kind": deployment.kind, "resource": deployment.endpoint, "variant": plan.name},
        )
        self._writers[key] = writer
        try:
            instance.start()
            instance.wait_ready(plan.startup_timeout, stop)
        except InstanceFailed as exc:
            self.stop(instance)
            raise DeployError(exc.reason) from exc
        except BaseException:
            self.stop(instance)
            raise
        return instance

    def start_many(self, deployment: Deployment, plan: VariantPlan, count: int) -> list[ServingInstance]:
        """Start ``count`` instances in parallel; all or none."""
        if count <= 0:
            return []
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=min(count, 8), thread_name_prefix="instance-start") as pool:
            futures = [pool.submit(self.start, deployment, plan, stop) for _ in range(count)]
            started: list[ServingInstance] = []
            errors: list[BaseException] = []
            for future in futures:
                try:
                    started.append(future.result())
                except BaseException as exc:
                    stop.set()  # the others give up waiting
                    errors.append(exc)
        # Report the failure that caused the others to be cancelled, not a cancellation.
        real = [e for e in errors if not isinstance(e.__cause__, StartCancelled)]
        error: BaseException | None = (real or errors)[0] if errors else None
        if error is not None:
            for instance in started:
                self.stop(instance)
            if isinstance(error, DeployError):
                raise error
            raise DeployError(f"InternalFailure: {type(error).__name__}: {error}") from error
        return started

    def stop(self, instance: ServingInstance, grace: float | None = None) -> None:
        instance.stop(self.stop_grace if grace is None else grace)
        writer = self._writers.pop(instance.key, None)
        if writer is not None:
            writer.close()  # the instance's output thread is done with it once stop() returned
        shutil.rmtree(instance.scratch, ignore_errors=True)


def plan_variants(
    config: dict[str, Any],
    models: dict[str, dict[str, Any]],
    images: ImageSource,
    model_data: ModelDataCache,
    holds: contextlib.ExitStack,
) -> dict[str, VariantPlan]:
    """Resolve every variant's model, image and model data, or raise DeployError saying why."""
    plans: dict[str, VariantPlan] = {}
    for variant in config["ProductionVariants"]:
        model_name = variant["ModelName"]
        model = models.get(model_name)
        if model is None:
            raise DeployError(
                f'Could not find model "{model_name}" for production variant {variant["VariantName"]}.'
            )
        container = model.get("PrimaryContainer") or model["Containers"][0]
        image_ref = container.get("Image", "")
        try:
            image = images.resolve(image_ref)  # each instance holds the image while it runs
        except Exception as exc:
            raise DeployError(f"Failed to resolve image {image_ref!r} of model {model_name}: {exc}") from exc
        env = {str(k): str(v) for k, v in container.get("Environment", {}).items()}
        try:
            model_dir = model_data.prepare(container)
            env, code_dir = stage_submit_directory(env, model_data)
        except Exception as exc:
            raise DeployError(str(exc)) from exc
        plans[variant["VariantName"]] = VariantPlan(
            name=variant["VariantName"],
            model_name=model_name,
            image_ref=image_ref,
            image=image,
            model_dir=model_dir,
            env=env,
            code_dir=code_dir,
            weight=float(variant.get("InitialVariantWeight", 1.0)),
            desired_count=int(variant.get("InitialInstanceCount", 1)),
            instance_type=str(variant.get("InstanceType", "")),
            startup_timeout=float(
                variant.get("ContainerStartupHealthCheckTimeoutInSeconds", DEFAULT_STARTUP_TIMEOUT)
            ),
            resolution_time=time.time(),
        )
    return plans
