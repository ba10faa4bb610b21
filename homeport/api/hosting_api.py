"""Wire handlers for models, endpoint configurations and endpoints."""

from __future__ import annotations

from typing import Any

from homeport.api.list_filters import list_query
from homeport.api.operations import OperationTable
from homeport.hosting.service import HostingService
from homeport.store.records import EndpointConfigRecord, EndpointRecord, ModelRecord, ResourceQuery


def model_shape(rec: ModelRecord) -> dict[str, Any]:
    out = {k: v for k, v in rec.spec.items() if k != "ModelName"}
    out.update(ModelName=rec.name, ModelArn=rec.arn, CreationTime=rec.creation_time)
    return out


def config_shape(rec: EndpointConfigRecord) -> dict[str, Any]:
    out = {k: v for k, v in rec.spec.items() if k != "EndpointConfigName"}
    out.update(EndpointConfigName=rec.name, EndpointConfigArn=rec.arn, CreationTime=rec.creation_time)
    return out


def endpoint_shape(rec: EndpointRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "EndpointName": rec.name,
        "EndpointArn": rec.arn,
        "EndpointConfigName": rec.config_name,
        "EndpointStatus": rec.status,
        "FailureReason": rec.failure_reason,
        "CreationTime": rec.creation_time,
        "LastModifiedTime": rec.last_modified_time,
    }
    if rec.variants:
        out["ProductionVariants"] = rec.variants
    if rec.spec.get("DeploymentConfig"):
        out["LastDeploymentConfig"] = rec.spec["DeploymentConfig"]
    if rec.pending_config_name:
        out["PendingDeploymentSummary"] = {"EndpointConfigName": rec.pending_config_name}
    return out


def endpoint_summary(rec: EndpointRecord) -> dict[str, Any]:
    return {
        "EndpointName": rec.name,
        "EndpointArn": rec.arn,
        "CreationTime": rec.creation_time,
        "LastModifiedTime": rec.last_modified_time,
        "EndpointStatus": rec.status,
    }


def register(table: OperationTable, service: HostingService) -> None:
    def create_model(p: dict[str, Any]) -> dict[str, Any]:
        return {"ModelArn": service.create_model(p).arn}

    def describe_model(p: dict[str, Any]) -> dict[str, Any]:
        return model_shape(service.get_model(p["ModelName"]))

    def delete_model(p: dict[str, Any]) -> dict[str, Any]:
        service.delete_model(p["ModelName"])
        return {}

    def list_models(p: dict[str, Any]) -> dict[str, Any]:
        records, token = service.list_models(list_query(ResourceQuery, p))
        models = [{"ModelName": r.name, "ModelArn": r.arn, "CreationTime": r.creation_time} for r in records]
        return {"Models": models, "NextToken": token}

    def create_config(p: dict[str, Any]) -> dict[str, Any]:
        return {"EndpointConfigArn": service.create_endpoint_config(p).arn}

    def describe_config(p: dict[str, Any]) -> dict[str, Any]:
        return config_shape(service.get_endpoint_config(p["EndpointConfigName"]))

    def delete_config(p: dict[str, Any]) -> dict[str, Any]:
        service.delete_endpoint_config(p["EndpointConfigName"])
        return {}

    def list_configs(p: dict[str, Any]) -> dict[str, Any]:
        records, token = service.list_endpoint_configs(list_query(ResourceQuery, p))
        configs = [
            {"EndpointConfigName": r.name, "EndpointConfigArn": r.arn, "CreationTime": r.creation_time}
            for r in records
        ]
        return {"EndpointConfigs": configs, "NextToken": token}

    def create_endpoint(p: dict[str, Any]) -> dict[str, Any]:
        return {"EndpointArn": service.create_endpoint(p).arn}

    def describe_endpoint(p: dict[str, Any]) -> dict[str, Any]:
        return endpoint_shape(service.get_endpoint(p["EndpointName"]))

    def update_endpoint(p: dict[str, Any]) -> dict[str, Any]:
        return {"EndpointArn": service.update_endpoint(p).arn}

    def update_weights(p: dict[str, Any]) -> dict[str, Any]:
        return {"EndpointArn": service.update_weights_and_capacities(p).arn}

    def delete_endpoint(p: dict[str, Any]) -> dict[str, Any]:
        service.delete_endpoint(p["EndpointName"])
        return {}

    def list_endpoints(p: dict[str, Any]) -> dict[str, Any]:
        records, token = service.list_endpoints(list_query(ResourceQuery, p))
        return {"Endpoints": [endpoint_summary(r) for r in records], "NextToken": token}

    for name, handler in {
        "CreateModel": create_model,
        "DescribeModel": describe_model,
        "DeleteModel": delete_model,
        "ListModels": list_models,
        "CreateEndpointConfig": create_config,
        "DescribeEndpointConfig": describe_config,
        "DeleteEndpointConfig": delete_config,
        "ListEndpointConfigs": list_configs,
        "CreateEndpoint": create_endpoint,
        "DescribeEndpoint": describe_endpoint,
        "UpdateEndpoint": update_endpoint,
        "UpdateEndpointWeightsAndCapacities": update_weights,
        "DeleteEndpoint": delete_endpoint,
        "ListEndpoints": list_endpoints,
    }.items():
        table.register(name, handler)
