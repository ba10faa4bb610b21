"""AddTags / ListTags / DeleteTags on the ARN of any resource the server knows."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from homeport.api.operations import OperationTable
from homeport.config import Settings
from homeport.errors import ResourceLimitExceeded, ValidationException
from homeport.store.database import Store

MAX_TAGS = 50

# ARN resource type → "does a resource with this (lower-cased) name exist?"
Exists = Callable[[str], bool]


def parse_arn(arn: str, settings: Settings) -> tuple[str, str]:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sagemaker" or "/" not in parts[5]:
        raise ValidationException(f"Invalid ARN: {arn}")
    resource_type, _, name = parts[5].partition("/")
    return resource_type, name


def register(table: OperationTable, settings: Settings, store: Store, resolvers: dict[str, Exists]) -> None:
    def require(arn: str) -> str:
        resource_type, name = parse_arn(arn, settings)
        exists = resolvers.get(resource_type)
        if exists is None or not exists(name) or arn != settings.arn(resource_type, name):
            raise ValidationException(f"Resource {arn} not found.")
        return arn

    def add_tags(params: dict[str, Any]) -> dict[str, Any]:
        arn = require(params["ResourceArn"])
        tags = [(t["Key"], t["Value"]) for t in params["Tags"]]
        current = {k for k, _ in store.list_tags(arn)}
        if len(current | {k for k, _ in tags}) > MAX_TAGS:
            raise ResourceLimitExceeded(f"A resource can have at most {MAX_TAGS} tags.")
        store.add_tags(arn, tags)
        return {"Tags": params["Tags"]}

    def list_tags(params: dict[str, Any]) -> dict[str, Any]:
        arn = require(params["ResourceArn"])
        tags = store.list_tags(arn)
        start = 0
        if params.get("NextToken"):
            try:
                start = int(json.loads(base64.urlsafe_b64decode(params["NextToken"]))["offset"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValidationException("Invalid pagination token") from exc
        limit = int(params.get("MaxResults", 50))
        page = tags[start : start + limit]
        token = None
        if start + limit < len(tags):
            token = base64.urlsafe_b64encode(json.dumps({"offset": start + limit}).encode()).decode()
        return {"Tags": [{"Key": k, "Value": v} for k, v in page], "NextToken": token}

    def delete_tags(params: dict[str, Any]) -> dict[str, Any]:
        arn = require(params["ResourceArn"])
        store.delete_tags(arn, list(params["TagKeys"]))
        return {}

    table.register("AddTags", add_tags)
    table.register("ListTags", list_tags)
    table.register("DeleteTags", delete_tags)
