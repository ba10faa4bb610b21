"""Helpers shared by the homeport_toolkit tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

TOOLKIT_PARENT = Path(__file__).resolve().parents[2] / "homeport" / "builtins" / "toolkit"

# Variables the toolkit reads: a developer's shell must not leak them into the tests.
TOOLKIT_ENV = (
    "SAGEMAKER_BASE_DIR",
    "SAGEMAKER_PROGRAM",
    "SAGEMAKER_SUBMIT_DIRECTORY",
    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
    "SAGEMAKER_MODEL_SERVER_WORKERS",
    "SAGEMAKER_BIND_TO_PORT",
    "SAGEMAKER_CONTAINER_LOG_LEVEL",
    "SAGEMAKER_TRAINING_MODULE",
    "SAGEMAKER_REGION",
    "TRAINING_JOB_NAME",
    "SM_HP_MP_PARAMETERS",
    "HOMEPORT_TOOLKIT_DEFAULT_HANDLER",
    "HOMEPORT_TOOLKIT_WORKERS",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toolkit_env(**extra: str) -> dict[str, str]:
    """The environment for a process running the toolkit: this one's, the toolkit on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in TOOLKIT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOOLKIT_PARENT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
