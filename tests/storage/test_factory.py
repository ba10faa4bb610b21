"""open_object_store: choosing a backend from settings."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from homeport.storage.base import S3Uri
from homeport.storage.factory import open_object_store
from homeport.storage.local import LocalObjectStore


def test_local_kind_is_a_folder_store(tmp_path: Path) -> None:
    store = open_object_store("local", tmp_path / "objects", None, "us-east-1")
    assert isinstance(store, LocalObjectStore)
    store.create_bucket("b")
    store.put_bytes(S3Uri("b", "k"), b"v")
    assert (tmp_path / "objects" / "b" / "k").read_bytes() == b"v"


def test_unknown_kind_names_the_accepted_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'gcs'.*local, s3"):
        open_object_store("gcs", tmp_path, None, "us-east-1")


def test_s3_kind_talks_to_the_endpoint(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The factory builds its own client, which takes credentials from the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    store = open_object_store("s3", tmp_path / "unused", moto_endpoint, "eu-west-1")
    name = f"hp-test-{uuid.uuid4().hex[:16]}"
    store.create_bucket(name)  # outside us-east-1 this needs a LocationConstraint
    store.create_bucket(name)
    store.put_bytes(S3Uri(name, "k"), b"v")
    assert [info.key for info in store.list(S3Uri(name, ""))] == ["k"]
    assert store.local_path(S3Uri(name, "k")) is None
    assert not (tmp_path / "unused").exists()


def test_local_store_does_not_import_boto3(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "from homeport.storage.factory import open_object_store\n"
        f"open_object_store('local', pathlib.Path({str(tmp_path)!r}), None, 'us-east-1')\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
