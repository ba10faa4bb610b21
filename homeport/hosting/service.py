"""Model, endpoint-configuration and endpoint operations: the business rules behind the API.

Generic shape validation already happened at the edge. Messages a client can see follow real
SageMaker's wording, which the SDK matches on ("Could not find …", "Cannot create already
existing …"): those are ValidationExceptions, not the ResourceNotFound/ResourceInUse codes of
the service model.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, TypeVar

from homeport.config import Settings
from homeport.errors import AlreadyExistsError, NotFoundError, ValidationException
from homeport.hosting.controller import EndpointController
from homeport.hosting.states import IN_PROGRESS, EndpointStatus
from homeport.store.database import Store
from homeport.store.records import EndpointConfigRecord, EndpointRecord, ModelRecord, ResourceQuery

Record = TypeVar("Record", ModelRecord, EndpointConfigRecord, EndpointRecord)


def _strip(request: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in request.items() if k != "Tags"})


class HostingService:
    def __init__(self, settings: Settings, store: Store, controller: EndpointController) -> None:
        self.settings = settings
        self.store = store
        self.controller = controller

    def _insert(self, insert: Callable[[Record], None], rec: Record, request: dict[str, Any]) -> None:
        """Store a new resource and the request's Tags; a duplicate is SageMaker's ValidationException."""
        try:
            insert(rec)
        except AlreadyExistsError as exc:
            raise ValidationException(exc.message) from exc
        tags = request.get("Tags") or []
        if tags:
            self.store.add_tags(rec.arn, [(t["Key"], t["Value"]) for t in tags])

    @staticmethod
    def _listing(store_call: Any, query: ResourceQuery) -> Any:
        try:
            return store_call(query)
        except ValueError as exc:
            raise ValidationException(str(exc)) from exc

    # -- models ----------------------------------------------------------------------------------

    def create_model(self, request: dict[str, Any]) -> ModelRecord:
        spec = _strip(request)
        containers = spec.get("Containers") or []
        primary = spec.get("PrimaryContainer")
        if primary is None and not containers:
            raise ValidationException("Either PrimaryContainer or Containers must be specified.")
        if primary is not None and containers:
            raise ValidationException("PrimaryContainer and Containers cannot both be specified.")
        if len(containers) > 1:
            raise ValidationException(
                "Inference pipelines (several Containers) are not supported by Homeport yet."
            )
        container = primary or containers[0]
        if not container.get("Image"):
            raise ValidationException("The container of the model must specify an Image.")
        if container.get("Mode", "SingleModel") != "SingleModel":
            raise ValidationException(
                "Multi-model containers (Mode MultiModel) are not supported by Homeport yet."
            )
        if "ModelDataUrl" in container and "ModelDataSource" in container:
            raise ValidationException("ModelDataUrl and ModelDataSource cannot both be specified.")
        spec.setdefault("EnableNetworkIsolation", False)
        name = spec["ModelName"]
        rec = ModelRecord(
            name=name, arn=self.settings.arn("model", name), creation_time=time.time(), spec=spec
        )
        self._insert(self.store.insert_model, rec, request)
        return rec

    def get_model(self, name: str) -> ModelRecord:
        rec = self.store.get_model(name)
        if rec is None:
            raise NotFoundError(f'Could not find model "{self.settings.arn("model", name)}".')
        return rec

    def delete_model(self, name: str) -> None:
        rec = self.get_model(name)
        self.store.delete_model(name)
        self.store.delete_all_tags(rec.arn)

    def list_models(self, query: ResourceQuery) -> tuple[list[ModelRecord], str | None]:
        return self._listing(self.store.list_models, query)

    # -- endpoint configurations -----------------------------------------------------------------

    def create_endpoint_config(self, request: dict[str, Any]) -> EndpointConfigRecord:
        spec = _strip(request)
        names = [v["VariantName"] for v in spec["ProductionVariants"]]
        if len(set(names)) != len(names):
            raise ValidationException("Variant names must be unique within an endpoint configuration.")
        for variant in spec["ProductionVariants"]:
            if variant.get("ServerlessConfig"):
                raise ValidationException("Serverless variants are not supported by Homeport yet.")
            if not variant.get("ModelName"):
                raise ValidationException(
                    f"Production variant {variant['VariantName']} must specify a ModelName."
                )
            if self.store.get_model(variant["ModelName"]) is None:
                raise ValidationException(
                    f'Could not find model "{self.settings.arn("model", variant["ModelName"])}".'
                )
            if int(variant.get("InitialInstanceCount", 1)) < 1:
                raise ValidationException(
                    f"Production variant {variant['VariantName']}: InitialInstanceCount must be at least 1."
                )
            variant.setdefault("InitialVariantWeight", 1.0)
            variant.setdefault("InitialInstanceCount", 1)
        if sum(float(v["InitialVariantWeight"]) for v in spec["ProductionVariants"]) <= 0:
            raise ValidationException(
                "The sum of the InitialVariantWeight of all variants must be greater than 0."
            )
        name = spec["EndpointConfigName"]
        rec = EndpointConfigRecord(
            name=name, arn=self.settings.arn("endpoint-config", name), creation_time=time.time(), spec=spec
        )
        self._insert(self.store.insert_endpoint_config, rec, request)
        return rec

    def get_endpoint_config(self, name: str) -> EndpointConfigRecord:
        rec = self.store.get_endpoint_config(name)
        if rec is None:
            raise NotFoundError(
                f'Could not find endpoint configuration "{self.settings.arn("endpoint-config", name)}".'
            )
        return rec

    def delete_endpoint_config(self, name: str) -> None:
        rec = self.get_endpoint_config(name)
        self.store.delete_endpoint_config(name)
        self.store.delete_all_tags(rec.arn)

    def list_endpoint_configs(self, query: ResourceQuery) -> tuple[list[EndpointConfigRecord], str | None]:
        return self._listing(self.store.list_endpoint_configs, query)

    # -- endpoints -------------------------------------------------------------------------------

    def create_endpoint(self, request: dict[str, Any]) -> EndpointRecord:
        spec = _strip(request)
        config = self.get_endpoint_config(spec["EndpointConfigName"])
        name = spec["EndpointName"]
        now = time.time()
        rec = EndpointRecord(
            name=name,
            arn=self.settings.arn("endpoint", name),
            config_name=config.name,
            status=EndpointStatus.CREATING.value,
            creation_time=now,
            last_modified_time=now,
            spec=spec,
        )
        self._insert(self.store.insert_endpoint, rec, request)
        self.controller.create(name)
        return rec

    def get_endpoint(self, name: str) -> EndpointRecord:
        rec = self.store.get_endpoint(name)
        if rec is None:
            raise NotFoundError(f'Could not find endpoint "{self.settings.arn("endpoint", name)}".')
        return rec

    def update_endpoint(self, request: dict[str, Any]) -> EndpointRecord:
        name = request["EndpointName"]
        self.get_endpoint(name)
        config = self.get_endpoint_config(request["EndpointConfigName"])

        def start(rec: EndpointRecord) -> None:
            if EndpointStatus(rec.status) in IN_PROGRESS:
                raise ValidationException(f'Cannot update in-progress endpoint "{rec.arn}".')
            rec.status = EndpointStatus.UPDATING.value
            rec.pending_config_name = config.name
            rec.last_modified_time = time.time()

        rec = self.store.update_endpoint(name, start)
        self.controller.update(name, config.name)
        return rec

    def update_weights_and_capacities(self, request: dict[str, Any]) -> EndpointRecord:
        name = request["EndpointName"]
        current = self.get_endpoint(name)
        known = {v["VariantName"] for v in current.variants}
        for change in request["DesiredWeightsAndCapacities"]:
            if change["VariantName"] not in known:
                raise ValidationException(
                    f"The variant name(s) [{change['VariantName']}] is/are not present in the endpoint "
                    f'"{current.arn}".'
                )
            if change.get("DesiredInstanceCount") is not None and int(change["DesiredInstanceCount"]) < 1:
                raise ValidationException("DesiredInstanceCount must be at least 1.")

        def start(rec: EndpointRecord) -> None:
            if rec.status != EndpointStatus.IN_SERVICE:
                raise ValidationException(f'Cannot update in-progress endpoint "{rec.arn}".')
            rec.status = EndpointStatus.UPDATING.value
            rec.last_modified_time = time.time()

        rec = self.store.update_endpoint(name, start)
        self.controller.update_weights_and_capacities(name, list(request["DesiredWeightsAndCapacities"]))
        return rec

    def delete_endpoint(self, name: str) -> None:
        def deleting(rec: EndpointRecord) -> None:
            rec.status = EndpointStatus.DELETING.value
            rec.last_modified_time = time.time()

        try:
            self.store.update_endpoint(name, deleting)
        except KeyError as exc:
            raise NotFoundError(f'Could not find endpoint "{self.settings.arn("endpoint", name)}".') from exc
        self.controller.delete(name)

    def list_endpoints(self, query: ResourceQuery) -> tuple[list[EndpointRecord], str | None]:
        return self._listing(self.store.list_endpoints, query)
