"""Fixtures for the object-store tests: each backend, and a real moto S3 server on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport.storage.base import ObjectStore
from homeport.storage.local import LocalObjectStore

REGION = "us-east-1"
# Dummy credentials: moto accepts any, and passing them explicitly keeps the developer's
# real AWS configuration out of the tests.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_server_command() -> str | None:
    beside_python = Path(sys.executable).with_name("moto_server")
    return str(beside_python) if beside_python.exists() else shutil.which("moto_server")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto server subprocess, shared by the whole session and stopped by PID."""
    command = _moto_server_command()
    if command is None:
        pytest.fail("moto_server is not installed (pip install 'moto[server]'): the S3 backend cannot be tested")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}: {log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # any HTTP answer means it is serving
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not answer on {endpoint}: {log_path.read_text()}")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_client(moto_endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session(region_name=REGION, **CREDENTIALS).client(
        "s3", endpoint_url=moto_endpoint, config=Config(s3={"addressing_style": "path"})
    )


@pytest.fixture
def s3_store(s3_client: Any, moto_endpoint: str) -> ObjectStore:
    from homeport.storage.s3 import S3ObjectStore

    return S3ObjectStore(moto_endpoint, region=REGION, client=s3_client)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture(params=["local", "s3"])
def object_store(request: pytest.FixtureRequest) -> ObjectStore:
    """The same tests against every backend; s3 starts moto only when first needed."""
    store: ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return store


@pytest.fixture
def bucket(object_store: ObjectStore) -> str:
    """A fresh bucket: the moto server lives for the whole session, so names never repeat."""
    name = f"hp-test-{uuid.uuid4().hex[:16]}"
    object_store.create_bucket(name)
    return name
