"""The botocore service models Homeport speaks, loaded once per process.

Owns the single place where the API layer gets a :class:`botocore.model.ServiceModel` (the same JSON
model boto3 uses, so our wire contract is the client's) and looks operations up by their wire name.
"""

from __future__ import annotations

import functools

import botocore.loaders
from botocore.model import OperationModel, OperationNotFoundError, ServiceModel


def load_service_model(service: str = "sagemaker") -> ServiceModel:
    """The newest botocore model of ``service`` (e.g. "sagemaker", "sagemaker-runtime"), loaded once."""
    # Delegates so that load_service_model() and load_service_model("sagemaker") share one entry:
    # functools.cache keys on the arguments as passed, not as defaulted.
    return _load_service_model(service)


@functools.cache
def _load_service_model(service: str) -> ServiceModel:
    loader = botocore.loaders.create_loader()
    description = loader.load_service_model(service, "service-2")
    return ServiceModel(description, service_name=service)


@functools.cache
def _operation_names(service: str) -> frozenset[str]:
    return frozenset(load_service_model(service).operation_names)


def operation(name: str, service: str = "sagemaker") -> OperationModel | None:
    """The operation called ``name`` on the wire (``X-Amz-Target: SageMaker.<name>``), or None."""
    # Checked against the name set first: botocore would raise for unknown names, and the name comes
    # straight from a request header, so anything (including "__init__") can arrive here.
    if name not in _operation_names(service):
        return None
    try:
        # botocore caches OperationModel objects per ServiceModel, so this is a dict lookup after
        # the first call.
        return load_service_model(service).operation_model(name)
    except OperationNotFoundError:  # pragma: no cover - guarded by the name set above
        return None
