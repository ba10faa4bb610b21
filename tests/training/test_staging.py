"""Channel staging from the embedded store: small channels copied (writable, as on SageMaker),
large ones hard-linked (zero-copy; the runner mounts them read-only)."""

from __future__ import annotations

from pathlib import Path

from homeport.storage.base import S3Uri
from homeport.storage.local import LocalObjectStore
from homeport.training.staging import LINK_FROM_BYTES, stage_channel


def _channel(uri: str) -> dict[str, object]:
    return {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}


def _store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "objects")
    store.create_bucket("b")
    store.put_bytes(S3Uri("b", "data/a.csv"), b"1,2\n")
    store.put_bytes(S3Uri("b", "data/sub/b.csv"), b"3,4\n")
    return store


def test_a_small_channel_is_copied_so_it_is_writable(tmp_path: Path) -> None:
    store = _store(tmp_path)
    staged = stage_channel(store, _channel("s3://b/data"), tmp_path / "train")
    assert (staged.files, staged.bytes, staged.linked) == (2, 8, False)
    assert staged.bytes < LINK_FROM_BYTES
    target = tmp_path / "train" / "sub" / "b.csv"
    assert target.read_bytes() == b"3,4\n"
    assert target.stat().st_ino != store.local_path(S3Uri("b", "data/sub/b.csv")).stat().st_ino  # type: ignore[union-attr]
    target.chmod(0o755)  # ModelTrainer's `chmod +x` of its driver: the stored object is untouched
    assert store.local_path(S3Uri("b", "data/sub/b.csv")).stat().st_mode & 0o111 == 0  # type: ignore[union-attr]


def test_a_channel_from_the_threshold_up_is_hard_linked(tmp_path: Path) -> None:
    store = _store(tmp_path)
    staged = stage_channel(store, _channel("s3://b/data"), tmp_path / "train", link_from=8)
    assert staged.linked
    target = tmp_path / "train" / "a.csv"
    assert target.stat().st_ino == store.local_path(S3Uri("b", "data/a.csv")).stat().st_ino  # type: ignore[union-attr]
