"""What only the docker runtime has: engine checks at start-up and instance-type limits."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
from e2e_support import (
    HOMEPORT,
    SCRIPTED,
    Server,
    client_env,
    free_port,
    start_server,
    training_request,
    wait_for,
    wait_secondary,
)

from homeport.runtimes.container import scope_for
from homeport.runtimes.instance_types import GIB, host_cpus


def test_server_refuses_to_start_without_an_engine(tmp_path: Path) -> None:
    env = client_env("http://127.0.0.1:1")
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    result = subprocess.run(
        [
            HOMEPORT,
            "server",
            "--runtime",
            "docker",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot reach a container engine" in result.stderr and "no-engine.sock" in result.stderr


def test_instance_type_sets_cpu_and_memory_limits(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--stop-grace", "1", runtime="docker")
    try:
        server.add_image("scripted", SCRIPTED)
        check_limits(server, server.sagemaker())
    finally:
        server.stop()


def check_limits(server: Server, sm: Any) -> None:
    sm.create_training_job(
        **training_request(
            "limits-m5",
            HyperParameters={"behaviour": "sleep", "seconds": "60"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        )
    )
    wait_secondary(sm, "limits-m5", "Training")
    engine = docker.from_env()
    scope = scope_for(server.data_dir, socket.gethostname())
    deadline = time.time() + 10
    found: list[dict[str, Any]] = []
    while not found and time.time() < deadline:
        found = engine.api.containers(
            filters={"label": [f"io.homeport.scope={scope}", "io.homeport.resource=limits-m5"]}
        )
    (entry,) = found
    host_config = engine.api.inspect_container(entry["Id"])["HostConfig"]
    assert host_config["Memory"] == 8 * GIB  # ml.m5.large: 2 vCPUs, 8 GiB
    assert host_config["NanoCpus"] == int(min(2, host_cpus()) * 1e9)
    sm.stop_training_job(TrainingJobName="limits-m5")
    assert wait_for(sm, "limits-m5")["TrainingJobStatus"] == "Stopped"
