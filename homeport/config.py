"""Server configuration: one immutable settings object built at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("HOMEPORT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".homeport"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_home)
    host: str = "127.0.0.1"
    port: int = 8643
    region: str = "us-east-1"
    account: str = "123456789012"
    runtime: str = "process"
    # docker runtime: "netns", "ports" or "auto" (see homeport.runtimes.container).
    container_network: str = "auto"
    # docker runtime: NVIDIA GPUs for ml.p*/ml.g* instance types: "auto", "on" or "off".
    gpus: str = "auto"
    # SQLAlchemy URL; None → SQLite (WAL) in the data dir.
    database_url: str | None = None
    # "local" (a folder in the data dir) or "s3" (an S3-compatible endpoint through boto3).
    object_store: str = "local"
    s3_endpoint_url: str | None = None
    # How many training jobs run at once; more wait in Starting/Pending.
    max_concurrent_jobs: int = 4
    # StopTrainingJob: SIGTERM, wait this long, then SIGKILL (SageMaker: 120 s).
    stop_grace_seconds: float = 120.0
    # Endpoint instances: SIGTERM, then SIGKILL this much later (SageMaker: 30 s).
    instance_stop_grace_seconds: float = 30.0
    # How often every serving instance is health-checked with GET /ping.
    health_check_seconds: float = 2.0
    # gzip level of model.tar.gz / output.tar.gz.
    compression_level: int = 6
    # How often a running job's lease is renewed, and when an unrenewed lease is dead.
    heartbeat_seconds: float = 2.0

    @property
    def database_path(self) -> Path:
        return self.data_dir / "homeport.db"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def venvs_dir(self) -> Path:
        # Venvs are pure caches keyed by content: several data dirs may share one folder.
        override = os.environ.get("HOMEPORT_VENV_CACHE")
        return Path(override).expanduser() if override else self.data_dir / "venvs"

    @property
    def endpoints_dir(self) -> Path:
        return self.data_dir / "endpoints"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "model-cache"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.database_path}"

    def arn(self, resource_type: str, name: str) -> str:
        """ARN as SageMaker writes it: the name lower-cased."""
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{resource_type}/{name.lower()}"
