"""Shared by the SDK flow scripts (run under .venv-sdk2 / .venv-sdk3, never under .venv).

A script is run as ``python SCRIPT PARAMS_JSON``; it prints what the SDK prints (the test
captures stdout) and ends with :func:`done`, which writes its result to ``$HOMEPORT_SDK_RESULT``.
Everything about where to connect comes from the environment the test sets
(``AWS_ENDPOINT_URL``, dummy credentials, ``AWS_DEFAULT_REGION``): nothing here names the server.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
INSTANCE_TYPE = "ml.m5.large"


def params() -> dict[str, Any]:
    return json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}


def done(**result: Any) -> None:
    sys.stdout.flush()
    with open(os.environ["HOMEPORT_SDK_RESULT"], "w", encoding="utf-8") as out:
        json.dump(result, out, default=str)


def boto3_client(service: str) -> Any:
    """A plain boto3 client that, like the SDK's, finds the server through AWS_ENDPOINT_URL."""
    import boto3

    return boto3.client(service)
