"""Plain records the metadata store reads and writes; the domain works with these, not rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainingJobRecord:
    name: str  # as the client spelled it; uniqueness is case-insensitive (ARNs are lower-cased)
    arn: str
    status: str  # TrainingJobStatus, exact AWS string
    secondary_status: str  # SecondaryStatus, exact AWS string
    creation_time: float  # epoch seconds
    last_modified_time: float
    spec: dict[str, Any]  # the accepted CreateTrainingJob request (echoed by Describe)
    transitions: list[dict[str, Any]] = field(default_factory=list)  # SecondaryStatusTransitions
    failure_reason: str | None = None
    training_start_time: float | None = None
    training_end_time: float | None = None
    final_metrics: list[dict[str, Any]] = field(default_factory=list)  # FinalMetricDataList
    model_artifacts: str | None = None  # S3 URI of model.tar.gz
    exit_code: int | None = None  # of algo-1's process, once it exited
    stop_requested: bool = False
    lease_owner: str | None = None  # the server instance running it
    lease_expires: float | None = None  # epoch seconds; an expired lease means the runner died


@dataclass(frozen=True)
class TrainingJobQuery:
    """ListTrainingJobs filters, already validated at the edge."""

    name_contains: str | None = None
    status_equals: str | None = None
    creation_time_after: float | None = None
    creation_time_before: float | None = None
    last_modified_time_after: float | None = None
    last_modified_time_before: float | None = None
    sort_by: str = "CreationTime"  # Name | CreationTime | Status
    sort_order: str = "Descending"  # Ascending | Descending
    max_results: int = 10
    next_token: str | None = None


@dataclass
class ModelRecord:
    name: str  # as the client spelled it; unique case-insensitively
    arn: str
    creation_time: float
    spec: dict[str, Any]  # the accepted CreateModel request without Tags


@dataclass
class EndpointConfigRecord:
    name: str
    arn: str
    creation_time: float
    spec: dict[str, Any]  # the accepted CreateEndpointConfig request without Tags


@dataclass
class EndpointRecord:
    name: str
    arn: str
    config_name: str  # the configuration currently serving (or being created)
    status: str  # EndpointStatus, exact AWS string
    creation_time: float
    last_modified_time: float
    spec: dict[str, Any]  # the accepted CreateEndpoint request without Tags
    # ProductionVariantSummary entries as DescribeEndpoint returns them (weights, counts, images)
    variants: list[dict[str, Any]] = field(default_factory=list)
    failure_reason: str | None = None
    pending_config_name: str | None = None  # UpdateEndpoint target while Updating
    lease_owner: str | None = None
    lease_expires: float | None = None


@dataclass(frozen=True)
class ResourceQuery:
    """ListModels / ListEndpointConfigs / ListEndpoints filters, already validated at the edge."""

    name_contains: str | None = None
    status_equals: str | None = None  # endpoints only
    creation_time_after: float | None = None
    creation_time_before: float | None = None
    last_modified_time_after: float | None = None  # endpoints only
    last_modified_time_before: float | None = None  # endpoints only
    sort_by: str = "CreationTime"  # Name | CreationTime (| Status for endpoints)
    sort_order: str = "Descending"
    max_results: int = 10
    next_token: str | None = None


@dataclass
class TransformJobRecord:
    name: str
    arn: str
    status: str  # TransformJobStatus, exact AWS string
    creation_time: float
    last_modified_time: float
    spec: dict[str, Any]  # the accepted CreateTransformJob request without Tags
    failure_reason: str | None = None
    transform_start_time: float | None = None
    transform_end_time: float | None = None
    stop_requested: bool = False
    # progress, for the CLI: objects and records done / total (total None until known)
    progress: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_expires: float | None = None
