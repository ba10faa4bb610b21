"""Fixtures for the object-store tests: each backend, the S3 one on the session's real moto server.

``moto_endpoint`` and ``s3_client`` (a boto3 client on it, dummy credentials) come from
tests/conftest.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from homeport.storage.base import ObjectStore
from homeport.storage.local import LocalObjectStore


@pytest.fixture
def s3_store(s3_client: Any, moto_endpoint: str) -> ObjectStore:
    from homeport.storage.s3 import S3ObjectStore

    return S3ObjectStore(moto_endpoint, region=s3_client.meta.region_name, client=s3_client)


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
