"""``homeport cp`` semantics (transfer.copy), against every backend."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from homeport.errors import NoSuchObject
from homeport.storage.base import ObjectStore, S3Uri
from homeport.storage.transfer import copy


def read(store: ObjectStore, uri: str) -> bytes:
    with store.open_read(S3Uri.parse(uri)) as reader:
        return reader.read()


def keys(store: ObjectStore, bucket: str, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(S3Uri(bucket, prefix))]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "top.txt").write_bytes(b"top")
    (root / "sub" / "mid.txt").write_bytes(b"mid")
    (root / "sub" / "deeper" / "low.bin").write_bytes(b"\x00" * 1000)
    return root


@pytest.fixture
def data_bucket(object_store: ObjectStore, bucket: str) -> str:
    for key in ["data/a.csv", "data/nested/b.csv", "data.csv", "data0/c.csv", "other/d.csv"]:
        object_store.put_bytes(S3Uri(bucket, key), key.encode())
    return bucket


def test_upload_one_file(object_store: ObjectStore, bucket: str, tree: Path) -> None:
    src = str(tree / "top.txt")
    assert copy(src, f"s3://{bucket}/exact/name.txt", object_store) == [
        (src, f"s3://{bucket}/exact/name.txt")
    ]
    assert copy(src, f"s3://{bucket}/into/", object_store) == [(src, f"s3://{bucket}/into/top.txt")]
    assert copy(src, f"s3://{bucket}", object_store) == [(src, f"s3://{bucket}/top.txt")]
    assert keys(object_store, bucket) == ["exact/name.txt", "into/top.txt", "top.txt"]
    assert read(object_store, f"s3://{bucket}/into/top.txt") == b"top"


def test_download_one_object(object_store: ObjectStore, data_bucket: str, tmp_path: Path) -> None:
    src = f"s3://{data_bucket}/data/nested/b.csv"
    existing_dir = tmp_path / "existing"
    existing_dir.mkdir()
    assert copy(src, str(existing_dir), object_store) == [(src, str(existing_dir / "b.csv"))]
    new_dir = tmp_path / "new-dir"
    assert copy(src, f"{new_dir}/", object_store) == [(src, str(new_dir / "b.csv"))]
    exact = tmp_path / "renamed.csv"
    assert copy(src, str(exact), object_store) == [(src, str(exact))]
    for path in [existing_dir / "b.csv", new_dir / "b.csv", exact]:
        assert path.read_bytes() == b"data/nested/b.csv"


def test_copy_between_uris(object_store: ObjectStore, data_bucket: str) -> None:
    src = f"s3://{data_bucket}/data/a.csv"
    assert copy(src, f"s3://{data_bucket}/backup/", object_store) == [
        (src, f"s3://{data_bucket}/backup/a.csv")
    ]
    assert (
        copy(src, f"s3://{data_bucket}/renamed.csv", object_store)[0][1] == f"s3://{data_bucket}/renamed.csv"
    )
    assert read(object_store, f"s3://{data_bucket}/backup/a.csv") == b"data/a.csv"
    assert read(object_store, f"s3://{data_bucket}/renamed.csv") == b"data/a.csv"
    assert read(object_store, src) == b"data/a.csv"


def test_recursive_upload_keeps_relative_paths(object_store: ObjectStore, bucket: str, tree: Path) -> None:
    seen: list[tuple[str, int]] = []
    copied = copy(
        str(tree),
        f"s3://{bucket}/in",
        object_store,
        recursive=True,
        progress=lambda s, n: seen.append((s, n)),
    )
    assert [dst for _, dst in copied] == [
        f"s3://{bucket}/in/sub/deeper/low.bin",
        f"s3://{bucket}/in/sub/mid.txt",
        f"s3://{bucket}/in/top.txt",
    ]
    assert keys(object_store, bucket) == ["in/sub/deeper/low.bin", "in/sub/mid.txt", "in/top.txt"]
    assert [n for _, n in seen] == [1000, 3, 3]
    assert seen[2][0] == f"upload: {tree / 'top.txt'} to s3://{bucket}/in/top.txt"


def test_recursive_download_takes_the_prefix_as_a_folder(
    object_store: ObjectStore, data_bucket: str, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    copied = copy(f"s3://{data_bucket}/data", str(dest), object_store, recursive=True)
    # Not data.csv nor data0/: "s3://b/data" means the objects under data/.
    assert copied == [
        (f"s3://{data_bucket}/data/a.csv", str(dest / "a.csv")),
        (f"s3://{data_bucket}/data/nested/b.csv", str(dest / "nested" / "b.csv")),
    ]
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "a.csv",
        "nested/b.csv",
    ]
    assert (dest / "nested" / "b.csv").read_bytes() == b"data/nested/b.csv"


def test_recursive_download_of_a_whole_bucket(
    object_store: ObjectStore, data_bucket: str, tmp_path: Path
) -> None:
    copied = copy(f"s3://{data_bucket}", str(tmp_path / "all"), object_store, recursive=True)
    assert len(copied) == 5
    assert (tmp_path / "all" / "data0" / "c.csv").read_bytes() == b"data0/c.csv"


def test_recursive_copy_into_its_own_prefix_copies_each_object_once(
    object_store: ObjectStore, data_bucket: str
) -> None:
    copied = copy(
        f"s3://{data_bucket}/data/", f"s3://{data_bucket}/data/backup/", object_store, recursive=True
    )
    assert [dst for _, dst in copied] == [
        f"s3://{data_bucket}/data/backup/a.csv",
        f"s3://{data_bucket}/data/backup/nested/b.csv",
    ]
    assert keys(object_store, data_bucket, "data/") == [
        "data/a.csv",
        "data/backup/a.csv",
        "data/backup/nested/b.csv",
        "data/nested/b.csv",
    ]
    assert read(object_store, f"s3://{data_bucket}/data/backup/nested/b.csv") == b"data/nested/b.csv"


def test_local_to_local_is_refused(object_store: ObjectStore, tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3://"):
        copy(str(tree / "top.txt"), str(tmp_path / "elsewhere.txt"), object_store)
    assert not (tmp_path / "elsewhere.txt").exists()


def test_missing_sources_are_named(object_store: ObjectStore, data_bucket: str, tmp_path: Path) -> None:
    missing_file = str(tmp_path / "no-such-file.txt")
    with pytest.raises(ValueError, match="no-such-file.txt"):
        copy(missing_file, f"s3://{data_bucket}/x", object_store)
    with pytest.raises(ValueError, match="no-such-dir"):
        copy(str(tmp_path / "no-such-dir"), f"s3://{data_bucket}/x", object_store, recursive=True)
    with pytest.raises(NoSuchObject, match=f"s3://{data_bucket}/data/missing.csv"):
        copy(f"s3://{data_bucket}/data/missing.csv", str(tmp_path / "out.csv"), object_store)
    with pytest.raises(NoSuchObject, match=f"s3://{data_bucket}/nothing/"):
        copy(f"s3://{data_bucket}/nothing", str(tmp_path / "out"), object_store, recursive=True)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out").exists()
    assert keys(object_store, data_bucket, "x") == []


def test_folder_without_recursive_is_refused(object_store: ObjectStore, data_bucket: str, tree: Path) -> None:
    with pytest.raises(ValueError, match="--recursive"):
        copy(str(tree), f"s3://{data_bucket}/x/", object_store)
    with pytest.raises(ValueError, match="--recursive"):
        copy(f"s3://{data_bucket}/data/", str(tree / "x"), object_store)
    with pytest.raises(ValueError, match="top.txt"):
        copy(str(tree / "top.txt"), f"s3://{data_bucket}/x/", object_store, recursive=True)
    assert keys(object_store, data_bucket, "x") == []


def test_upload_into_missing_bucket(object_store: ObjectStore, tree: Path) -> None:
    with pytest.raises(NoSuchObject, match="hp-test-absent"):
        copy(str(tree / "top.txt"), "s3://hp-test-absent/x.txt", object_store)


def test_download_refuses_keys_that_would_escape(s3_store: ObjectStore, tmp_path: Path) -> None:
    # Only S3 can hold such a key; the local store refuses it at put time.
    bucket_name = f"hp-test-{uuid.uuid4().hex[:16]}"
    s3_store.create_bucket(bucket_name)
    s3_store.put_bytes(S3Uri(bucket_name, "data/../../evil.txt"), b"evil")
    s3_store.put_bytes(S3Uri(bucket_name, "data/fine.txt"), b"fine")
    dest = tmp_path / "a" / "b"
    with pytest.raises(ValueError, match="evil"):
        copy(f"s3://{bucket_name}/data", str(dest), s3_store, recursive=True)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "a" / "evil.txt").exists()
    assert not dest.exists()
