"""What only the local-folder store promises: atomic files, safe keys, real paths."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from homeport.errors import NoSuchObject, ObjectStoreError
from homeport.storage.base import InvalidObjectName, S3Uri
from homeport.storage.local import RESERVED, LocalObjectStore


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "objects")
    store.create_bucket("b")
    return store


def temp_files(store: LocalObjectStore) -> list[Path]:
    tmp_dir = store.root / "b" / RESERVED / "tmp"
    return list(tmp_dir.iterdir()) if tmp_dir.exists() else []


def test_layout_is_bucket_folder_and_key_path(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_bytes(S3Uri("b", "data/train/part-0.csv"), b"1,2\n")
    assert (tmp_path / "objects" / "b" / "data" / "train" / "part-0.csv").read_bytes() == b"1,2\n"
    mode = (tmp_path / "objects" / "b" / "data" / "train" / "part-0.csv").stat().st_mode & 0o777
    assert mode == 0o644


def test_writes_leave_no_temp_files(store: LocalObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(100_000))
    store.put_file(S3Uri("b", "f.bin"), source)
    store.put_bytes(S3Uri("b", "g.bin"), b"g")
    store.put_bytes(S3Uri("b", "g.bin"), b"gg")
    assert temp_files(store) == []
    assert [info.key for info in store.list(S3Uri("b", ""))] == ["f.bin", "g.bin"]


def test_failed_write_leaves_no_temp_file_and_keeps_old_object(store: LocalObjectStore) -> None:
    store.put_bytes(S3Uri("b", "model"), b"old")
    # "model" is a file, so "model/part" cannot be a folder entry: the publish step fails.
    with pytest.raises(ObjectStoreError, match="s3://b/model/part"):
        store.put_bytes(S3Uri("b", "model/part"), b"new")
    store.put_bytes(S3Uri("b", "dir/inner"), b"x")
    with pytest.raises(ObjectStoreError, match="s3://b/dir"):
        store.put_bytes(S3Uri("b", "dir"), b"x")
    assert temp_files(store) == []
    with store.open_read(S3Uri("b", "model")) as reader:
        assert reader.read() == b"old"


def test_readers_see_the_old_or_the_new_object_never_a_mix(store: LocalObjectStore) -> None:
    size = 256 * 1024
    versions = [b"A" * size, b"B" * size]
    key = S3Uri("b", "hot/object")
    store.put_bytes(key, versions[0])
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(60):
                store.put_bytes(key, versions[i % 2])
        except BaseException as exc:  # surfaced by the main thread's assertion
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not stop.is_set() or reads == 0:
        with store.open_read(key) as reader:
            assert reader.read() in versions
        reads += 1
    thread.join()
    assert errors == []
    assert temp_files(store) == []


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "a//b",
        "a/./b",
        ".",
        "..",
        "a\0b",
        f"{RESERVED}/tmp/x",
        "",
    ],
)
def test_keys_that_cannot_be_a_file_under_the_bucket_are_rejected(store: LocalObjectStore, key: str) -> None:
    bad = S3Uri("b", key)
    with pytest.raises(InvalidObjectName):
        store.put_bytes(bad, b"x")
    with pytest.raises(InvalidObjectName):
        store.head(bad)
    with pytest.raises(InvalidObjectName):
        store.open_read(bad)
    with pytest.raises(InvalidObjectName):
        store.delete(bad)
    # Nothing was written anywhere: not above the root, not in the bucket.
    assert sorted(p.name for p in store.root.parent.iterdir()) == ["objects"]
    assert [info.key for info in store.list(S3Uri("b", ""))] == []


def test_invalid_names_are_both_value_and_object_store_errors(store: LocalObjectStore) -> None:
    with pytest.raises(ValueError, match=r"\.\./x"):
        store.put_bytes(S3Uri("b", "../x"), b"x")
    with pytest.raises(ObjectStoreError):
        store.local_path(S3Uri("b", "a/../../x"))
    for name in ["..", ".", "a/b", ".hidden", "", "nul\0"]:
        with pytest.raises(InvalidObjectName):
            store.create_bucket(name)
    assert sorted(p.name for p in store.root.iterdir()) == ["b"]


def test_a_key_ending_with_slash_is_a_folder_not_an_object(store: LocalObjectStore) -> None:
    store.put_bytes(S3Uri("b", "data/x.csv"), b"x")
    with pytest.raises(InvalidObjectName, match="folder"):
        store.put_bytes(S3Uri("b", "data/"), b"")
    assert store.head(S3Uri("b", "data/")) is None
    assert store.head(S3Uri("b", "data")) is None
    with pytest.raises(NoSuchObject):
        store.open_read(S3Uri("b", "data/"))
    with pytest.raises(NoSuchObject):
        store.open_read(S3Uri("b", "data"))
    store.delete(S3Uri("b", "data/"))
    store.delete(S3Uri("b", "data"))
    assert store.head(S3Uri("b", "data/x.csv")) is not None


def test_local_path(store: LocalObjectStore) -> None:
    store.put_bytes(S3Uri("b", "models/m1/model.tar.gz"), b"tar")
    path = store.local_path(S3Uri("b", "models/m1/model.tar.gz"))
    assert path == store.root / "b" / "models" / "m1" / "model.tar.gz"
    assert path.read_bytes() == b"tar"
    # A folder-style key gives the folder, so staging can bind-mount a whole prefix.
    assert store.local_path(S3Uri("b", "models/")) == store.root / "b" / "models"
    assert store.local_path(S3Uri("b", "")) == store.root / "b"
    missing = store.local_path(S3Uri("b", "not/yet"))
    assert missing == store.root / "b" / "not" / "yet" and not missing.exists()


def test_delete_removes_folders_it_empties(store: LocalObjectStore) -> None:
    store.put_bytes(S3Uri("b", "p/q/r/leaf"), b"x")
    store.put_bytes(S3Uri("b", "p/sibling"), b"y")
    store.delete(S3Uri("b", "p/q/r/leaf"))
    assert not (store.root / "b" / "p" / "q").exists()
    assert (store.root / "b" / "p" / "sibling").exists()
    store.delete(S3Uri("b", "p/sibling"))
    assert not (store.root / "b" / "p").exists()
    assert store.bucket_exists("b")


def test_etag_is_content_md5_and_survives_a_new_store(store: LocalObjectStore) -> None:
    put = store.put_bytes(S3Uri("b", "k"), b"content")
    again = LocalObjectStore(store.root).head(S3Uri("b", "k"))
    assert again is not None and again.etag == put.etag == hashlib.md5(b"content").hexdigest()


def test_files_written_around_the_store_get_a_fresh_etag(store: LocalObjectStore) -> None:
    store.put_bytes(S3Uri("b", "out/model.bin"), b"v1")
    path = store.local_path(S3Uri("b", "out/model.bin"))
    assert path is not None
    # A training job writing straight into the folder: same inode, new size and mtime.
    with open(path, "r+b") as handle:
        handle.write(b"version-2")
    head = store.head(S3Uri("b", "out/model.bin"))
    assert head is not None and head.etag == hashlib.md5(b"version-2").hexdigest()
    assert head.size == len(b"version-2")
    # A file that never went through the store at all is listed with its md5 too.
    (path.parent / "extra.txt").write_bytes(b"extra")
    listed = {info.key: info.etag for info in store.list(S3Uri("b", "out/"))}
    assert listed == {
        "out/extra.txt": hashlib.md5(b"extra").hexdigest(),
        "out/model.bin": hashlib.md5(b"version-2").hexdigest(),
    }


def test_list_ignores_prefixes_no_local_key_can_have(store: LocalObjectStore) -> None:
    store.put_bytes(S3Uri("b", "a/x"), b"x")
    assert list(store.list(S3Uri("b", "../"))) == []
    assert list(store.list(S3Uri("b", f"{RESERVED}/"))) == []
    assert [info.key for info in store.list(S3Uri("b", "a/"))] == ["a/x"]


def test_put_survives_a_concurrent_delete_pruning_the_same_folder(store: LocalObjectStore) -> None:
    # Each thread's delete empties the shared folder and prunes it while the other thread
    # may be between creating that folder and renaming its file into it.
    errors: list[BaseException] = []

    def churn(name: str) -> None:
        try:
            for _ in range(200):
                store.put_bytes(S3Uri("b", f"shared/deep/{name}"), b"x")
                assert store.head(S3Uri("b", f"shared/deep/{name}")) is not None
                store.delete(S3Uri("b", f"shared/deep/{name}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not (store.root / "b" / "shared").exists()
