"""The ObjectStore contract, run unchanged against every backend."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from homeport.errors import NoSuchObject, ObjectStoreError
from homeport.storage.base import ObjectStore, S3Uri
from homeport.storage.local import LocalObjectStore


def uri(bucket: str, key: str) -> S3Uri:
    return S3Uri(bucket, key)


def keys(store: ObjectStore, bucket: str, prefix: str) -> list[str]:
    return [info.key for info in store.list(S3Uri(bucket, prefix))]


def test_create_bucket_is_idempotent(object_store: ObjectStore) -> None:
    name = f"hp-test-{uuid.uuid4().hex[:16]}"
    assert not object_store.bucket_exists(name)
    object_store.create_bucket(name)
    assert object_store.bucket_exists(name)
    object_store.create_bucket(name)
    assert object_store.bucket_exists(name)
    assert keys(object_store, name, "") == []


def test_put_bytes_round_trip(object_store: ObjectStore, bucket: str) -> None:
    data = b"hello, homeport\n" * 100
    info = object_store.put_bytes(uri(bucket, "greeting.txt"), data)
    assert (info.bucket, info.key, info.size) == (bucket, "greeting.txt", len(data))
    # A single-part write's ETag is the content md5 on S3; the local store matches that.
    assert info.etag == hashlib.md5(data).hexdigest()
    assert abs(info.last_modified - time.time()) < 120
    with object_store.open_read(uri(bucket, "greeting.txt")) as reader:
        assert reader.read() == data
    assert object_store.head(uri(bucket, "greeting.txt")) == info


def test_empty_object(object_store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    info = object_store.put_bytes(uri(bucket, "empty"), b"")
    assert info.size == 0
    dest = tmp_path / "empty.out"
    assert object_store.get_file(uri(bucket, "empty"), dest).size == 0
    assert dest.read_bytes() == b""


@pytest.mark.parametrize("size", [1234, 20 * 1024 * 1024])
def test_put_file_get_file_round_trip(
    object_store: ObjectStore, bucket: str, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    put = object_store.put_file(uri(bucket, "blobs/source.bin"), source)
    assert put.size == size
    head = object_store.head(uri(bucket, "blobs/source.bin"))
    assert head is not None and head.etag == put.etag and head.size == size

    dest = tmp_path / "not" / "yet" / "there" / "copy.bin"
    got = object_store.get_file(uri(bucket, "blobs/source.bin"), dest)
    assert dest.read_bytes() == data
    assert (got.size, got.etag) == (size, put.etag)
    # Nothing but the file itself is left beside it (no partial-download leftovers).
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"]


def test_get_file_replaces_existing_destination(
    object_store: ObjectStore, bucket: str, tmp_path: Path
) -> None:
    object_store.put_bytes(uri(bucket, "k"), b"new")
    dest = tmp_path / "k"
    dest.write_bytes(b"old and longer")
    object_store.get_file(uri(bucket, "k"), dest)
    assert dest.read_bytes() == b"new"


def test_nested_keys(object_store: ObjectStore, bucket: str) -> None:
    object_store.put_bytes(uri(bucket, "a/b/c/deep.txt"), b"deep")
    object_store.put_bytes(uri(bucket, "a/shallow.txt"), b"shallow")
    deep = object_store.head(uri(bucket, "a/b/c/deep.txt"))
    assert deep is not None and deep.size == 4
    with object_store.open_read(uri(bucket, "a/shallow.txt")) as reader:
        assert reader.read() == b"shallow"
    assert object_store.head(uri(bucket, "a/b")) is None
    assert keys(object_store, bucket, "a/") == ["a/b/c/deep.txt", "a/shallow.txt"]


def test_head_of_missing_is_none(object_store: ObjectStore, bucket: str) -> None:
    assert object_store.head(uri(bucket, "missing.txt")) is None
    assert object_store.head(uri(bucket, "missing/deeper.txt")) is None
    assert object_store.head(uri(f"hp-test-nobucket-{uuid.uuid4().hex[:8]}", "k")) is None


def test_get_of_missing_raises_no_such_object(object_store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    missing = uri(bucket, "dir/missing.txt")
    with pytest.raises(NoSuchObject, match=f"s3://{bucket}/dir/missing.txt"):
        object_store.get_file(missing, tmp_path / "out" / "missing.txt")
    assert not (tmp_path / "out" / "missing.txt").exists()
    with pytest.raises(NoSuchObject, match=f"s3://{bucket}/dir/missing.txt"):
        object_store.open_read(missing)
    other = f"hp-test-nobucket-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NoSuchObject, match=f"s3://{other}/k"):
        object_store.open_read(uri(other, "k"))


def test_put_into_missing_bucket_raises_no_such_object(object_store: ObjectStore, tmp_path: Path) -> None:
    missing = f"hp-test-nobucket-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NoSuchObject, match=missing):
        object_store.put_bytes(uri(missing, "k"), b"x")
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(NoSuchObject, match=missing):
        object_store.put_file(uri(missing, "k"), source)
    assert not object_store.bucket_exists(missing)


def test_put_file_of_missing_source_raises(object_store: ObjectStore, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ObjectStoreError, match="nope.bin"):
        object_store.put_file(uri(bucket, "k"), tmp_path / "nope.bin")
    assert object_store.head(uri(bucket, "k")) is None


LIST_KEYS = [
    "datb",
    "data/train/b.csv",
    "data0.csv",
    "data/tr.csv",
    "data/test/x.csv",
    "data.csv",
    "data/train/a.csv",
    "data/train/sub/z.csv",
]


@pytest.fixture
def listed_bucket(object_store: ObjectStore, bucket: str) -> str:
    for key in LIST_KEYS:
        object_store.put_bytes(uri(bucket, key), key.encode())
    return bucket


def test_list_everything_in_key_order(object_store: ObjectStore, listed_bucket: str) -> None:
    # '.' < '/' < '0' in byte order: a folder's keys sort between its siblings' names.
    assert keys(object_store, listed_bucket, "") == sorted(LIST_KEYS)
    assert sorted(LIST_KEYS)[:3] == ["data.csv", "data/test/x.csv", "data/tr.csv"]


def test_list_partial_segment_prefix(object_store: ObjectStore, listed_bucket: str) -> None:
    assert keys(object_store, listed_bucket, "data/tr") == [
        "data/tr.csv",
        "data/train/a.csv",
        "data/train/b.csv",
        "data/train/sub/z.csv",
    ]
    assert keys(object_store, listed_bucket, "data") == [
        "data.csv",
        "data/test/x.csv",
        "data/tr.csv",
        "data/train/a.csv",
        "data/train/b.csv",
        "data/train/sub/z.csv",
        "data0.csv",
    ]
    assert keys(object_store, listed_bucket, "data/train/s") == ["data/train/sub/z.csv"]


def test_list_folder_prefix_and_no_match(object_store: ObjectStore, listed_bucket: str) -> None:
    assert keys(object_store, listed_bucket, "data/train/") == [
        "data/train/a.csv",
        "data/train/b.csv",
        "data/train/sub/z.csv",
    ]
    assert keys(object_store, listed_bucket, "data/train/a.csv") == ["data/train/a.csv"]
    assert keys(object_store, listed_bucket, "nothing") == []
    assert keys(object_store, listed_bucket, "data/nothing/") == []


def test_list_infos_match_head(object_store: ObjectStore, listed_bucket: str) -> None:
    infos = list(object_store.list(S3Uri(listed_bucket, "data/train/")))
    assert [info.size for info in infos] == [len(info.key) for info in infos]
    for info in infos:
        assert info.bucket == listed_bucket
        assert object_store.head(uri(listed_bucket, info.key)) == info
        assert info.etag == hashlib.md5(info.key.encode()).hexdigest()


def test_list_of_missing_bucket_raises(object_store: ObjectStore) -> None:
    with pytest.raises(NoSuchObject):
        list(object_store.list(S3Uri(f"hp-test-nobucket-{uuid.uuid4().hex[:8]}", "")))


def test_delete_is_idempotent(object_store: ObjectStore, bucket: str) -> None:
    object_store.put_bytes(uri(bucket, "a/b/gone.txt"), b"x")
    object_store.put_bytes(uri(bucket, "a/kept.txt"), b"y")
    object_store.delete(uri(bucket, "a/b/gone.txt"))
    assert object_store.head(uri(bucket, "a/b/gone.txt")) is None
    object_store.delete(uri(bucket, "a/b/gone.txt"))
    object_store.delete(uri(bucket, "never/was.txt"))
    object_store.delete(uri(f"hp-test-nobucket-{uuid.uuid4().hex[:8]}", "k"))
    assert keys(object_store, bucket, "") == ["a/kept.txt"]


def test_deleting_the_last_key_under_a_prefix_frees_its_name(object_store: ObjectStore, bucket: str) -> None:
    object_store.put_bytes(uri(bucket, "model/part"), b"x")
    object_store.delete(uri(bucket, "model/part"))
    # With no folders left behind, "model" can now be an object itself.
    object_store.put_bytes(uri(bucket, "model"), b"whole")
    assert keys(object_store, bucket, "") == ["model"]


def test_overwrite_replaces(object_store: ObjectStore, bucket: str) -> None:
    first = object_store.put_bytes(uri(bucket, "k.txt"), b"one")
    second = object_store.put_bytes(uri(bucket, "k.txt"), b"twotwo")
    assert second.size == 6 and second.etag != first.etag
    with object_store.open_read(uri(bucket, "k.txt")) as reader:
        assert reader.read() == b"twotwo"
    assert [(i.key, i.size) for i in object_store.list(S3Uri(bucket, ""))] == [("k.txt", 6)]
    assert object_store.head(uri(bucket, "k.txt")) == second


def test_open_read_streams_in_chunks(object_store: ObjectStore, bucket: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    object_store.put_bytes(uri(bucket, "stream.bin"), data)
    chunks: list[bytes] = []
    with object_store.open_read(uri(bucket, "stream.bin")) as reader:
        while chunk := reader.read(64 * 1024):
            assert len(chunk) <= 64 * 1024
            chunks.append(chunk)
    assert len(chunks) >= 49
    assert b"".join(chunks) == data


def test_local_path_is_a_file_or_none(object_store: ObjectStore, bucket: str) -> None:
    object_store.put_bytes(uri(bucket, "x/y.txt"), b"payload")
    path = object_store.local_path(uri(bucket, "x/y.txt"))
    # Only the folder-backed store has one, and it holds the object's bytes.
    if isinstance(object_store, LocalObjectStore):
        assert path is not None and path.read_bytes() == b"payload"
    else:
        assert path is None
