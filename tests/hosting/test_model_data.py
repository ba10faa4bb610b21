"""ModelDataCache against real object stores: the local folder store and S3 (the session's moto).

``CountingStore`` wraps a real store and counts the calls that fetch bytes (``get_file``, and
``local_path``, which is how the cache reads a local store's file in place), so a test can tell
whether a prepare fetched the model again. It can also hide ``local_path`` (forcing downloads)
and slow ``get_file`` down (so concurrent prepares really overlap).
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from homeport.hosting.model_data import ModelDataCache, ModelDataError, model_data_spec
from homeport.storage.base import ObjectInfo, ObjectStore, S3Uri
from homeport.storage.local import LocalObjectStore

# -- helpers ---------------------------------------------------------------------------------


class CountingStore:
    """A real ObjectStore, delegated to, that counts byte fetches."""

    def __init__(self, inner: ObjectStore, local: bool = True, slow_get: float = 0.0) -> None:
        self.inner = inner
        self.local = local
        self.slow_get = slow_get
        self.fetches = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.fetches += 1
        time.sleep(self.slow_get)

    def create_bucket(self, bucket: str) -> None:
        self.inner.create_bucket(bucket)

    def bucket_exists(self, bucket: str) -> bool:
        return self.inner.bucket_exists(bucket)

    def put_file(self, uri: S3Uri, path: Path) -> ObjectInfo:
        return self.inner.put_file(uri, path)

    def put_bytes(self, uri: S3Uri, data: bytes) -> ObjectInfo:
        return self.inner.put_bytes(uri, data)

    def get_file(self, uri: S3Uri, dest: Path) -> ObjectInfo:
        self._count()
        return self.inner.get_file(uri, dest)

    def open_read(self, uri: S3Uri) -> BinaryIO:
        return self.inner.open_read(uri)

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        return self.inner.head(uri)

    def list(self, prefix: S3Uri) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, uri: S3Uri) -> None:
        self.inner.delete(uri)

    def local_path(self, uri: S3Uri) -> Path | None:
        if not self.local:
            return None
        path = self.inner.local_path(uri)
        if path is not None:
            self._count()  # the cache reads (or links) this file in place of a download
        return path


def make_tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def make_evil_tar_gz(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            tf.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder``: relative path -> content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """What a failed prepare left in the cache root (the empty staging folder is by design)."""
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    return [name for name in found if name != ".staging"]


def data_source(uri: str, data_type: str, compression: str) -> dict[str, Any]:
    """A ContainerDefinition's ModelDataSource."""
    return {"S3DataSource": {"S3Uri": uri, "S3DataType": data_type, "CompressionType": compression}}


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def s3_store(s3_client: Any, moto_endpoint: str) -> ObjectStore:
    from homeport.storage.s3 import S3ObjectStore

    return S3ObjectStore(moto_endpoint, region=s3_client.meta.region_name, client=s3_client)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> CountingStore:
    inner: ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return CountingStore(inner)


@pytest.fixture
def bucket(store: CountingStore) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"  # moto lives for the whole session
    store.create_bucket(name)
    return name


def upload_archive(
    store: CountingStore, tmp_path: Path, bucket: str, key: str, files: dict[str, bytes]
) -> str:
    archive = make_tar_gz(tmp_path / f"upload-{uuid.uuid4().hex[:8]}.tar.gz", files)
    store.put_file(S3Uri(bucket, key), archive)
    return f"s3://{bucket}/{key}"


MODEL_FILES = {"model.txt": b"weights v1\n", "code/inference.py": b"def model_fn(d):\n    return d\n"}


# -- ModelDataUrl ------------------------------------------------------------------------------


def test_model_data_url_is_extracted(store: CountingStore, bucket: str, tmp_path: Path) -> None:
    url = upload_archive(store, tmp_path, bucket, "jobs/j1/output/model.tar.gz", MODEL_FILES)
    cache = ModelDataCache(tmp_path / "cache", store)

    folder = cache.prepare({"Image": "img", "ModelDataUrl": url})

    assert folder is not None and folder.parent == tmp_path / "cache"
    assert tree(folder) == MODEL_FILES
    # The provenance sidecar sits beside the folder, never inside what /opt/ml/model shows.
    assert (folder.parent / (folder.name + ".json")).is_file()
    assert leftovers(tmp_path / "cache") == sorted(
        [folder.name, folder.name + ".json", f"{folder.name}/code", f"{folder.name}/code/inference.py",
         f"{folder.name}/model.txt"]
    )  # fmt: skip


def test_same_version_is_prepared_once_and_a_new_upload_is_a_new_version(
    store: CountingStore, bucket: str, tmp_path: Path
) -> None:
    url = upload_archive(store, tmp_path, bucket, "m/model.tar.gz", MODEL_FILES)
    cache = ModelDataCache(tmp_path / "cache", store)
    first = cache.prepare({"ModelDataUrl": url})
    assert first is not None
    fetches = store.fetches
    assert fetches == 1
    inode = first.stat().st_ino
    # Something the cache would wipe if it rebuilt the folder.
    (first / "planted").write_bytes(b"still here")

    again = cache.prepare({"ModelDataUrl": url})
    # A second cache on the same root (e.g. after a restart) reuses the folder too.
    restarted = ModelDataCache(tmp_path / "cache", store).prepare({"ModelDataUrl": url})

    assert again == first and restarted == first
    assert store.fetches == fetches
    assert first.stat().st_ino == inode and (first / "planted").read_bytes() == b"still here"

    upload_archive(store, tmp_path, bucket, "m/model.tar.gz", {"model.txt": b"weights v2\n"})
    newer = cache.prepare({"ModelDataUrl": url})
    assert newer is not None and newer != first
    assert tree(newer) == {"model.txt": b"weights v2\n"}
    assert (first / "model.txt").read_bytes() == b"weights v1\n"  # running instances keep theirs


@pytest.mark.parametrize("local", [True, False], ids=["in-place", "download"])
def test_concurrent_prepares_of_one_version_build_once(
    local_store: LocalObjectStore, tmp_path: Path, local: bool
) -> None:
    # Slow downloads keep the first build busy while the other threads arrive.
    store = CountingStore(local_store, local=local, slow_get=0.3)
    store.create_bucket("models")
    url = upload_archive(store, tmp_path, "models", "m/model.tar.gz", MODEL_FILES)
    cache = ModelDataCache(tmp_path / "cache", store)
    barrier = threading.Barrier(4)
    results: list[Path | None] = []
    errors: list[BaseException] = []

    def prepare() -> None:
        barrier.wait()
        try:
            results.append(cache.prepare({"ModelDataUrl": url}))
        except BaseException as exc:  # reported below, with the thread's own traceback lost otherwise
            errors.append(exc)

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not errors
    assert len(results) == 4 and len(set(results)) == 1
    folder = results[0]
    assert folder is not None and tree(folder) == MODEL_FILES
    assert store.fetches == 1
    assert list((tmp_path / "cache" / ".staging").iterdir()) == []


# -- ModelDataSource ---------------------------------------------------------------------------


def test_uncompressed_prefix_keeps_relative_paths(store: CountingStore, bucket: str, tmp_path: Path) -> None:
    objects = {
        "llm/v1/config.json": b"{}",
        "llm/v1/weights/part-0.bin": b"\x00\x01",
        "llm/v1/weights/part-1.bin": b"\x02\x03",
        "llm/v1-other/stray.bin": b"not under the prefix",
    }
    for key, data in objects.items():
        store.put_bytes(S3Uri(bucket, key), data)
    cache = ModelDataCache(tmp_path / "cache", store)
    source = data_source(f"s3://{bucket}/llm/v1/", "S3Prefix", "None")

    folder = cache.prepare({"ModelDataSource": source})

    assert folder is not None
    assert tree(folder) == {
        "config.json": b"{}",
        "weights/part-0.bin": b"\x00\x01",
        "weights/part-1.bin": b"\x02\x03",
    }
    local = store.inner.local_path(S3Uri(bucket, "llm/v1/config.json"))
    if local is not None:
        # The local store's files are hard-linked, not copied.
        assert (folder / "config.json").stat().st_ino == local.stat().st_ino
    fetches = store.fetches
    assert cache.prepare({"ModelDataSource": source}) == folder
    assert store.fetches == fetches

    # Any change to the listing (a new object) is a new model version.
    store.put_bytes(S3Uri(bucket, "llm/v1/tokenizer.json"), b"[]")
    newer = cache.prepare({"ModelDataSource": source})
    assert newer is not None and newer != folder
    assert tree(newer)["tokenizer.json"] == b"[]"


def test_single_uncompressed_object_is_named_after_its_key(
    store: CountingStore, bucket: str, tmp_path: Path
) -> None:
    store.put_bytes(S3Uri(bucket, "models/model.onnx"), b"onnx bytes")
    cache = ModelDataCache(tmp_path / "cache", store)
    source = data_source(f"s3://{bucket}/models/model.onnx", "S3Object", "None")

    folder = cache.prepare({"ModelDataSource": source})

    assert folder is not None and tree(folder) == {"model.onnx": b"onnx bytes"}


def test_gzip_object_source_is_an_archive(store: CountingStore, bucket: str, tmp_path: Path) -> None:
    url = upload_archive(store, tmp_path, bucket, "a/model.tar.gz", MODEL_FILES)
    cache = ModelDataCache(tmp_path / "cache", store)
    source = data_source(url, "S3Object", "Gzip")

    folder = cache.prepare({"ModelDataSource": source})

    assert folder is not None and tree(folder) == MODEL_FILES
    # Same bytes, same key: a ModelDataUrl naming the same archive shares the folder.
    assert cache.prepare({"ModelDataUrl": url}) == folder


def test_prefix_with_a_file_and_folder_of_one_name_fails(s3_store: ObjectStore, tmp_path: Path) -> None:
    # Only S3 can hold both "w" and "w/part1"; SageMaker documents this as a deployment failure.
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    s3_store.create_bucket(bucket)
    s3_store.put_bytes(S3Uri(bucket, "m/w"), b"file")
    s3_store.put_bytes(S3Uri(bucket, "m/w/part1"), b"file in folder")
    cache = ModelDataCache(tmp_path / "cache", s3_store)
    source = data_source(f"s3://{bucket}/m/", "S3Prefix", "None")

    with pytest.raises(ModelDataError, match='"m/w/part1" clashes'):
        cache.prepare({"ModelDataSource": source})
    assert leftovers(tmp_path / "cache") == []


def test_no_model_data_gives_none(local_store: LocalObjectStore, tmp_path: Path) -> None:
    cache = ModelDataCache(tmp_path / "cache", local_store)
    assert cache.prepare({"Image": "my-image:latest", "Environment": {"A": "b"}}) is None


# -- failures ----------------------------------------------------------------------------------


def test_missing_object_prefix_and_bucket(store: CountingStore, bucket: str, tmp_path: Path) -> None:
    cache = ModelDataCache(tmp_path / "cache", store)
    url = f"s3://{bucket}/nope/model.tar.gz"
    with pytest.raises(ModelDataError) as caught:
        cache.prepare({"ModelDataUrl": url})
    assert caught.value.message.startswith(f'Failed to download model data from URL "{url}"')
    assert f'Could not find model data at "{url}"' in caught.value.message

    prefix = f"s3://{bucket}/empty/"
    source = data_source(prefix, "S3Prefix", "None")
    with pytest.raises(ModelDataError, match="Could not find model data .*no objects under that prefix"):
        cache.prepare({"ModelDataSource": source})

    other = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/model.tar.gz"
    with pytest.raises(ModelDataError, match="Could not find model data"):
        cache.prepare({"ModelDataUrl": other})
    assert leftovers(tmp_path / "cache") == []


def test_archive_member_escaping_with_dotdot_is_refused(
    local_store: LocalObjectStore, tmp_path: Path
) -> None:
    local_store.create_bucket("models")
    good = tarfile.TarInfo("model.txt")
    good.size = 3
    evil = tarfile.TarInfo("../escaped.txt")
    evil.size = 4
    archive = make_evil_tar_gz(tmp_path / "evil.tar.gz", [good, evil])
    local_store.put_file(S3Uri("models", "evil/model.tar.gz"), archive)
    cache_root = tmp_path / "cache"
    cache = ModelDataCache(cache_root, local_store)

    with pytest.raises(ModelDataError) as caught:
        cache.prepare({"ModelDataUrl": "s3://models/evil/model.tar.gz"})

    message = caught.value.message
    assert message.startswith('Failed to extract model data archive from URL "s3://models/evil/model.tar.gz"')
    assert "unsafe member '../escaped.txt'" in message
    assert leftovers(cache_root) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_archive_symlink_escaping_is_refused(local_store: LocalObjectStore, tmp_path: Path) -> None:
    local_store.create_bucket("models")
    link = tarfile.TarInfo("weights")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../../../etc"
    through = tarfile.TarInfo("weights/passwd")
    through.size = 5
    archive = make_evil_tar_gz(tmp_path / "evil.tar.gz", [link, through])
    local_store.put_file(S3Uri("models", "evil.tar.gz"), archive)
    cache_root = tmp_path / "cache"
    cache = ModelDataCache(cache_root, local_store)

    with pytest.raises(
        ModelDataError, match=r"unsafe member 'weights': symlink target .* leaves the destination"
    ):
        cache.prepare({"ModelDataUrl": "s3://models/evil.tar.gz"})
    assert leftovers(cache_root) == []


def test_corrupt_archive_fails_clearly(store: CountingStore, bucket: str, tmp_path: Path) -> None:
    store.put_bytes(S3Uri(bucket, "bad/model.tar.gz"), b"\x1f\x8b" + os.urandom(200))
    cache_root = tmp_path / "cache"
    cache = ModelDataCache(cache_root, store)

    with pytest.raises(
        ModelDataError, match=r'Failed to extract model data archive from URL "s3://.*/bad/model\.tar\.gz"'
    ):
        cache.prepare({"ModelDataUrl": f"s3://{bucket}/bad/model.tar.gz"})
    assert leftovers(cache_root) == []


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"ModelDataUrl": "https://example.com/model.tar.gz"}, "not a valid s3:// URI"),
        (
            {"ModelDataUrl": "s3://b/m.tar.gz", "ModelDataSource": {"S3DataSource": {"S3Uri": "s3://b/m.tar.gz"}}},
            "not both",
        ),
        ({"ModelDataSource": data_source("s3://b/p", "S3Prefix", "None")}, 'must end with "/"'),
        ({"ModelDataSource": data_source("s3://b/p/", "S3Prefix", "Gzip")}, "must be uncompressed"),
        ({"ModelDataSource": data_source("s3://b/p/", "ManifestFile", "None")}, "Unsupported S3DataType"),
        ({"ModelDataSource": data_source("s3://b/k", "S3Object", "Zstd")}, "Unsupported CompressionType"),
        ({"ModelDataSource": {}}, "must contain an S3DataSource"),
    ],
)  # fmt: skip
def test_malformed_sources_are_refused(container: dict[str, Any], expected: str) -> None:
    with pytest.raises(ModelDataError, match=expected):
        model_data_spec(container)


def test_orphaned_staging_of_a_dead_process_is_removed(local_store: LocalObjectStore, tmp_path: Path) -> None:
    dead = 4_194_305  # above PID_MAX_LIMIT (2**22): never a live process
    orphan = tmp_path / "cache" / ".staging" / f"{dead}-abc"
    (orphan / "data").mkdir(parents=True)
    mine = tmp_path / "cache" / ".staging" / f"{os.getpid()}-def"
    mine.mkdir()

    ModelDataCache(tmp_path / "cache", local_store)

    assert not orphan.exists()
    assert mine.exists()  # a live process's build in progress is left alone
