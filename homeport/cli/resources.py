"""The SageMaker resource kinds the CLI lists, describes, stops and removes, in one table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeport.cli.exit_codes import usage
from homeport.cli.output import status_text, when

Column = tuple[str, Callable[[dict[str, Any]], str]]


def _get(key: str) -> Callable[[dict[str, Any]], str]:
    def read(doc: dict[str, Any]) -> str:
        value = doc.get(key)
        return "" if value is None else str(value)

    return read


def _time(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda doc: when(doc.get(key))


def _status(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda doc: status_text(str(doc.get(key, "")))


@dataclass(frozen=True)
class Kind:
    name: str  # canonical, as written in tables and errors
    aliases: tuple[str, ...]
    noun: str  # Training job, …: the API's noun in operation names
    name_param: str  # TrainingJobName, …
    list_key: str  # the summaries member of the List* answer
    columns: tuple[Column, ...]
    status_key: str | None = None
    stoppable: bool = False
    removable: bool = False
    filters_status: bool = False

    def op(self, verb: str) -> str:
        """boto3 method name: ``op("describe")`` → ``describe_training_job``."""
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in self.noun).lstrip("_")
        return f"{verb}_{snake}"

    @property
    def list_op(self) -> str:
        return self.op("list") + "s"


KINDS: tuple[Kind, ...] = (
    Kind(
        "training-job",
        ("job", "jobs", "training-job", "training-jobs", "training", "train"),
        "TrainingJob",
        "TrainingJobName",
        "TrainingJobSummaries",
        (
            ("NAME", _get("TrainingJobName")),
            ("STATUS", _status("TrainingJobStatus")),
            ("SECONDARY", _get("SecondaryStatus")),
            ("CREATED", _time("CreationTime")),
            ("ENDED", _time("TrainingEndTime")),
        ),
        status_key="TrainingJobStatus",
        stoppable=True,
        filters_status=True,
    ),
    Kind(
        "endpoint",
        ("endpoint", "endpoints", "ep"),
        "Endpoint",
        "EndpointName",
        "Endpoints",
        (
            ("NAME", _get("EndpointName")),
            ("STATUS", _status("EndpointStatus")),
            ("CREATED", _time("CreationTime")),
            ("MODIFIED", _time("LastModifiedTime")),
        ),
        status_key="EndpointStatus",
        removable=True,
        filters_status=True,
    ),
    Kind(
        "endpoint-config",
        ("endpoint-config", "endpoint-configs", "config", "configs"),
        "EndpointConfig",
        "EndpointConfigName",
        "EndpointConfigs",
        (("NAME", _get("EndpointConfigName")), ("CREATED", _time("CreationTime"))),
        removable=True,
    ),
    Kind(
        "model",
        ("model", "models"),
        "Model",
        "ModelName",
        "Models",
        (("NAME", _get("ModelName")), ("CREATED", _time("CreationTime"))),
        removable=True,
    ),
    Kind(
        "transform-job",
        ("transform", "transforms", "transform-job", "transform-jobs", "batch"),
        "TransformJob",
        "TransformJobName",
        "TransformJobSummaries",
        (
            ("NAME", _get("TransformJobName")),
            ("STATUS", _status("TransformJobStatus")),
            ("CREATED", _time("CreationTime")),
            ("ENDED", _time("TransformEndTime")),
            ("FAILURE", _get("FailureReason")),
        ),
        status_key="TransformJobStatus",
        stoppable=True,
        filters_status=True,
    ),
)

KIND_HELP = "jobs | endpoints | endpoint-configs | models | transforms"


def kind(word: str) -> Kind:
    lowered = word.lower()
    for k in KINDS:
        if lowered in k.aliases:
            return k
    raise usage(f"unknown kind {word!r}: one of {KIND_HELP}")


def describe(sm: Any, k: Kind, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = getattr(sm, k.op("describe"))(**{k.name_param: name})
    doc.pop("ResponseMetadata", None)
    return doc
