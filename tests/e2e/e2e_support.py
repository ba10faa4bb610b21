"""End-to-end helpers: a real Homeport server on 127.0.0.1 driven by real clients.

The server runs as a subprocess (``homeport server``) with its own data dir; it is stopped by
PID. Venvs of test images are cached across runs in ``$HOMEPORT_VENV_CACHE`` (CI keeps it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOMEPORT = str(BIN / "homeport")
SCRIPTED = Path(__file__).parent / "images" / "scripted"
DECISION_TREES = ROOT / "examples" / "decision_trees"
IRIS = ROOT / "examples" / "data" / "iris.csv"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
# Every runtime the server can be started with; the session server runs the suite on each.
RUNTIMES = ("process", "docker")
VENV_CACHE = Path(os.environ.get("HOMEPORT_VENV_CACHE", Path.home() / ".cache" / "homeport-test-venvs"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="homeport",
        AWS_SECRET_ACCESS_KEY="homeport",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("AWS_PROFILE", None)
    return env


@dataclass
class Server:
    data_dir: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    runtime: str = "process"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = client_env(self.url)
        env["HOMEPORT_HOME"] = str(self.data_dir)
        env["HOMEPORT_VENV_CACHE"] = str(VENV_CACHE)
        return env

    def start(self, timeout: float = 60) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                HOMEPORT,
                "server",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--runtime",
                self.runtime,
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.url}/_homeport/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready:\n{self.log_path.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); HOMEPORT_SHOW_SERVER_LOG=1 prints its log."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.log_path is not None and os.environ.get("HOMEPORT_SHOW_SERVER_LOG"):
            print(self.log_path.read_text())

    def homeport(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [HOMEPORT, *args], capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"homeport {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def add_image(self, name: str, folder: Path, *extra: str) -> None:
        """The folder as image ``name``: registered (process runtime; ``extra`` are `image add`
        options), or built from the Dockerfile in it through the engine (docker runtime)."""
        if self.runtime == "docker":
            self.homeport("image", "build", str(folder), "--tag", name, "--quiet", "--network", "host")
        else:
            self.homeport("image", "add", name, str(folder), "--data-dir", str(self.data_dir), *extra)

    def cp(self, src: str, dst: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.homeport("cp", src, dst, "--data-dir", str(self.data_dir), *extra)

    def sagemaker(self) -> Any:
        return boto3.client(
            "sagemaker",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="homeport",
            aws_secret_access_key="homeport",
            config=Config(retries={"max_attempts": 1}),
        )


def start_server(tmp: Path, *extra: str, runtime: str = "process") -> Server:
    server = Server(tmp / "data", free_port(), list(extra), runtime=runtime)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    server.start()
    return server


def training_request(name: str, image: str = "scripted", **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://output/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": {"behaviour": "succeed"},
    }
    request.update(overrides)
    return request


def wait_for(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        desc: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        if desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return desc
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish: {desc['TrainingJobStatus']}/{desc['SecondaryStatus']}")


def wait_secondary(sm: Any, name: str, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        desc: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        if desc["SecondaryStatus"] == status:
            return desc
        time.sleep(0.05)
    raise AssertionError(f"{name} never reached {status}: {desc['SecondaryStatus']}")


def job_processes(job_name: str) -> list[int]:
    """PIDs of live processes whose environment carries TRAINING_JOB_NAME=<job_name>."""
    marker = f"TRAINING_JOB_NAME={job_name}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids
