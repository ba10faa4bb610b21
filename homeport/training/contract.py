"""The training container contract: the /opt/ml layout, config files, environment and argv.

Reference: ../shared/docs/sagemaker-reference.md §3.1. Everything a container reads is
derived here from the accepted CreateTrainingJob request, in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "algo-1"
GROUP = "homogeneousCluster"


@dataclass(frozen=True)
class JobLayout:
    """A job's folders on the host; each ``/opt/ml`` subfolder is bind-mounted at its real path."""

    root: Path

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def config(self) -> Path:
        return self.input / "config"

    @property
    def data(self) -> Path:
        return self.input / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    @property
    def artifacts(self) -> Path:
        """Packaged model.tar.gz / output.tar.gz before upload (outside every mount)."""
        return self.root / "artifacts"

    def create(self) -> None:
        for folder in (
            self.config,
            self.data,
            self.model,
            self.output_data,
            self.checkpoints,
            self.scratch,
            self.artifacts,
        ):
            folder.mkdir(parents=True, exist_ok=True)


def input_data_config(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    default_mode = spec.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
    config: dict[str, dict[str, str]] = {}
    for channel in spec.get("InputDataConfig", []):
        mode = channel.get("InputMode", default_mode)
        source = channel["DataSource"].get("S3DataSource", {})
        entry = {
            # FastFile channels are presented to the container as File, as SageMaker does.
            "TrainingInputMode": "File" if mode == "FastFile" else mode,
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            entry["ContentType"] = channel["ContentType"]
        config[channel["ChannelName"]] = entry
    return config


def resource_config(spec: dict[str, Any]) -> dict[str, Any]:
    instance_type = spec.get("ResourceConfig", {}).get("InstanceType", "local")
    hosts = [HOST]
    return {
        "current_host": HOST,
        "current_instance_type": instance_type,
        "current_group_name": GROUP,
        "hosts": hosts,
        "instance_groups": [{"instance_group_name": GROUP, "instance_type": instance_type, "hosts": hosts}],
        "network_interface_name": "eth0",
    }


def write_config(layout: JobLayout, spec: dict[str, Any]) -> None:
    files = {
        "hyperparameters.json": spec.get("HyperParameters", {}),
        "inputdataconfig.json": input_data_config(spec),
        "resourceconfig.json": resource_config(spec),
    }
    for name, doc in files.items():
        (layout.config / name).write_text(json.dumps(doc, indent=None), encoding="utf-8")


def environment(
    spec: dict[str, Any], name: str, arn: str, region: str, services: dict[str, str] | None = None
) -> dict[str, str]:
    """The container's environment: ``services`` (how to reach the object store), then
    SageMaker's variables, then the request's ``Environment``, which wins."""
    env = {
        **(services or {}),
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": arn,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    env.update({str(k): str(v) for k, v in spec.get("Environment", {}).items()})
    return env


def entrypoint(spec: dict[str, Any]) -> tuple[str, ...]:
    """ContainerEntrypoint: replaces the image's entrypoint (empty: the image's own)."""
    return tuple(str(a) for a in spec.get("AlgorithmSpecification", {}).get("ContainerEntrypoint", []))


def command(spec: dict[str, Any]) -> list[str]:
    """The command after the entrypoint: ``train``, or ContainerArguments.

    With ContainerEntrypoint the arguments follow it; without, they replace the image's
    command, like `docker run IMAGE ARGS`.
    """
    arguments = [str(a) for a in spec.get("AlgorithmSpecification", {}).get("ContainerArguments", [])]
    if entrypoint(spec):
        return arguments
    return arguments or ["train"]


def argv(spec: dict[str, Any]) -> list[str]:
    """The whole command line when the image has no entrypoint of its own."""
    return [*entrypoint(spec), *command(spec)]
