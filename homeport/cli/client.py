"""boto3 clients for the CLI: every client command talks to the server's AWS APIs, nothing else.

The server URL is ``--endpoint-url``, else ``$HOMEPORT_URL``, else ``http://127.0.0.1:8643``.
Credentials and region come from the usual AWS configuration when there is one; otherwise
dummy ones are used (Homeport accepts any signature), so a fresh machine needs no setup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

DEFAULT_URL = "http://127.0.0.1:8643"
DUMMY_KEY = "homeport"
DEFAULT_REGION = "us-east-1"

EndpointUrl = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        envvar="HOMEPORT_URL",
        help=f"The Homeport server (env HOMEPORT_URL; default {DEFAULT_URL}).",
        show_default=False,
    ),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Machine-readable JSON on stdout (datetimes in ISO 8601).")
]


def server_url(endpoint_url: str | None) -> str:
    return (endpoint_url or os.environ.get("HOMEPORT_URL") or DEFAULT_URL).rstrip("/")


def _local_session() -> Any:
    """A botocore session that never asks an instance-metadata or container service for keys."""
    import botocore.session

    session = botocore.session.get_session()
    resolver = session.get_component("credential_provider")
    for remote in ("iam-role", "container-role"):
        if resolver.get_provider(remote) is not None:
            resolver.remove(remote)
    return session


@dataclass
class Clients:
    """Lazily created boto3 clients for one server URL."""

    url: str
    _made: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_url(cls, endpoint_url: str | None) -> Clients:
        return cls(server_url(endpoint_url))

    def _client(self, service: str) -> Any:
        if service not in self._made:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(botocore_session=_local_session())
            kwargs: dict[str, Any] = {
                "endpoint_url": self.url,
                "region_name": session.region_name or DEFAULT_REGION,
                "config": Config(
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=120,
                    s3={"addressing_style": "path"},
                ),
            }
            if session.get_credentials() is None:
                kwargs.update(aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY)
            self._made[service] = session.client(service, **kwargs)
        return self._made[service]

    @property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @property
    def runtime(self) -> Any:
        return self._client("sagemaker-runtime")

    @property
    def s3(self) -> Any:
        return self._client("s3")

    @property
    def logs(self) -> Any:
        return self._client("logs")
