"""pack_dir / extract_safe: archives readable by GNU tar and tarfile, and hostile archives refused."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from homeport.artifacts import UnsafeArchiveError, extract_safe, pack_dir
from homeport.artifacts import tarball as tarball_mod

RNG_SEED = b"homeport-artifacts"


def _text(n: int) -> bytes:
    line = b"epoch,step,loss,accuracy,label\n"
    rows = b"".join(
        b"%d,%d,%.6f,%.4f,cat\n" % (i // 100, i, 1 / (i + 1), (i % 97) / 97) for i in range(n // 20)
    )
    return (line + rows)[:n]


def _random(n: int) -> bytes:
    return os.urandom(n)


def _make_tree(root: Path) -> dict[str, bytes]:
    """A SageMaker-ish model folder; returns {relative path: bytes} of its regular files."""
    files = {
        "model.pkl": _random(3000),
        "code/inference.py": b"def model_fn(model_dir):\n    return 42\n",
        "code/requirements.txt": b"",
        "code/lib/util.py": b"X = 1\n",
        "metrics/eval.csv": _text(50_000),
        "deep/a/b/c/d/e.txt": b"deep",
        # Longer than ustar's 100-char name field: needs a pax header.
        "long/" + "n" * 150 + ".bin": b"long name",
        "unicode/modèle-ü.txt": "héllo".encode(),
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "empty-dir").mkdir()
    os.chmod(root / "code/inference.py", 0o755)
    return files


def _read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _gnu_list(archive: Path) -> list[str]:
    out = subprocess.run(["tar", "-tzf", str(archive)], check=True, capture_output=True)
    return out.stdout.decode().splitlines()


def _gnu_extract(archive: Path, dest: Path) -> None:
    dest.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest)], check=True, capture_output=True)


# --------------------------------------------------------------------------------------------
# pack_dir


def test_round_trip_gnu_tar_and_tarfile(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = _make_tree(src)
    dest = tmp_path / "model.tar.gz"

    written = pack_dir(src, dest)

    assert written == dest.stat().st_size
    names = _gnu_list(dest)
    # Relative member names like SageMaker's model.tar.gz: no './' prefix, no absolute paths.
    assert "model.pkl" in names and "code/inference.py" in names and "empty-dir/" in names
    assert all(not n.startswith(("./", "/")) for n in names)
    assert {n.rstrip("/") for n in names} == {p.relative_to(src).as_posix() for p in src.rglob("*")}
    _gnu_extract(dest, tmp_path / "gnu")
    assert _read_tree(tmp_path / "gnu") == files
    assert os.stat(tmp_path / "gnu/code/inference.py").st_mode & 0o777 == 0o755
    assert (tmp_path / "gnu/empty-dir").is_dir()

    with tarfile.open(dest, "r:gz") as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isreg()}  # type: ignore[union-attr]
    assert got == files
    # The stream is one standard gzip member with a correct CRC/ISIZE trailer.
    subprocess.run(["gzip", "-t", str(dest)], check=True)
    assert len(gzip.decompress(dest.read_bytes())) % tarfile.RECORDSIZE == 0


def test_extract_safe_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = _make_tree(src)
    (src / "link-to-model").symlink_to("model.pkl")
    os.link(src / "model.pkl", src / "model-hardlink.pkl")
    dest = tmp_path / "model.tar.gz"
    pack_dir(src, dest)

    out = tmp_path / "out"
    extract_safe(dest, out)

    assert _read_tree(out) == {**files, "model-hardlink.pkl": files["model.pkl"]}
    assert os.readlink(out / "link-to-model") == "model.pkl"
    assert os.stat(out / "model.pkl").st_ino == os.stat(out / "model-hardlink.pkl").st_ino
    assert (out / "empty-dir").is_dir()


def test_symlinks_are_stored_not_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data/file.txt").write_bytes(b"payload")
    (src / "rel-link").symlink_to("data/file.txt")
    (src / "dir-link").symlink_to("data")
    (src / "abs-link").symlink_to("/etc/hostname")
    (src / "dangling").symlink_to("nowhere")
    dest = tmp_path / "a.tar.gz"

    pack_dir(src, dest)

    with tarfile.open(dest, "r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert members["rel-link"].issym() and members["rel-link"].linkname == "data/file.txt"
    assert members["dir-link"].issym() and members["dir-link"].linkname == "data"
    assert members["abs-link"].issym() and members["abs-link"].linkname == "/etc/hostname"
    assert members["dangling"].issym()
    # Not followed: nothing was archived under the directory symlink.
    assert not any(n.startswith("dir-link/") for n in members)
    _gnu_extract(dest, tmp_path / "gnu")
    assert os.readlink(tmp_path / "gnu/rel-link") == "data/file.txt"
    assert (tmp_path / "gnu/rel-link").read_bytes() == b"payload"


def test_empty_dir_gives_valid_empty_archive(tmp_path: Path) -> None:
    src = tmp_path / "empty"
    src.mkdir()
    dest = tmp_path / "empty.tar.gz"

    pack_dir(src, dest)

    assert _gnu_list(dest) == []
    with tarfile.open(dest, "r:gz") as tf:
        assert tf.getmembers() == []
    extract_safe(dest, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("block_size", [None, 160 * 1024 + 3])
def test_large_files_cross_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int | None
) -> None:
    if block_size is not None:
        # An odd block size puts tar headers and file ends at every possible offset in a block.
        monkeypatch.setattr(tarball_mod, "DEFAULT_BLOCK_SIZE", block_size)
    src = tmp_path / "src"
    src.mkdir()
    blob = _random(9 * 1024 * 1024 + 7)
    files = {
        "big.bin": blob,
        "big.csv": _text(3 * 1024 * 1024 + 1),
        "exact-1mib.bin": blob[: 1024 * 1024],
        "one-less.bin": blob[: 1024 * 1024 - 1],
        "one-more.bin": blob[: 1024 * 1024 + 1],
        "half-and-half.bin": blob[:600_000] + _text(600_000),
        "tiny.txt": b"x",
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    dest = tmp_path / "big.tar.gz"

    pack_dir(src, dest, threads=2)

    _gnu_extract(dest, tmp_path / "gnu")
    assert _read_tree(tmp_path / "gnu") == files
    with tarfile.open(dest, "r:gz") as tf:
        assert tf.extractfile("big.bin").read() == blob  # type: ignore[union-attr]
    subprocess.run(["gzip", "-t", str(dest)], check=True)


def test_level_is_honoured(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "metrics.csv").write_bytes(_text(2 * 1024 * 1024))
    sizes = {}
    for level in (0, 1, 9):
        dest = tmp_path / f"l{level}.tar.gz"
        pack_dir(src, dest, level=level)
        sizes[level] = dest.stat().st_size
        with tarfile.open(dest, "r:gz") as tf:
            assert tf.extractfile("metrics.csv").read() == (src / "metrics.csv").read_bytes()  # type: ignore[union-attr]
    assert sizes[0] > 2 * 1024 * 1024  # level 0 stores
    assert sizes[1] > sizes[9]
    assert sizes[9] < 2 * 1024 * 1024 * 0.6


def test_incompressible_data_is_not_expanded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(_random(4 * 1024 * 1024))
    for level in (1, 6):
        dest = tmp_path / f"l{level}.tar.gz"
        pack_dir(src, dest, level=level)
        # zlib-ng's level 1 would grow random data ~5%; stored blocks cost ~0.01%.
        assert dest.stat().st_size < 4 * 1024 * 1024 * 1.001 + 4096


def test_output_is_independent_of_thread_count(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    (src / "big.csv").write_bytes(_text(3 * 1024 * 1024))
    outs = []
    for threads in (1, 3):
        dest = tmp_path / f"t{threads}.tar.gz"
        pack_dir(src, dest, threads=threads)
        outs.append(dest.read_bytes())
    assert outs[0] == outs[1]


def test_missing_src_raises_and_leaves_no_dest(tmp_path: Path) -> None:
    dest = tmp_path / "model.tar.gz"
    with pytest.raises(FileNotFoundError):
        pack_dir(tmp_path / "nope", dest)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_keeps_old_dest_and_no_temp_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(_random(3 * 1024 * 1024))
    os.mkfifo(src / "z-fifo")  # packed after a.bin's blocks are already in flight
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dest = out_dir / "model.tar.gz"
    dest.write_bytes(b"previous archive")

    with pytest.raises(ValueError, match="special file"):
        pack_dir(src, dest)

    assert dest.read_bytes() == b"previous archive"
    assert [p.name for p in out_dir.iterdir()] == ["model.tar.gz"]


def test_dest_inside_src_does_not_archive_itself(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.pkl").write_bytes(b"m")
    dest = src / "model.tar.gz"

    pack_dir(src, dest)

    assert _gnu_list(dest) == ["model.pkl"]


def test_invalid_arguments(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError):
        pack_dir(tmp_path / "src", tmp_path / "x.tar.gz", level=10)
    with pytest.raises(ValueError):
        pack_dir(tmp_path / "src", tmp_path / "x.tar.gz", threads=0)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        pack_dir(tmp_path / "file", tmp_path / "x.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists()


def test_archive_mode_follows_umask(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    dest = tmp_path / "x.tar.gz"
    pack_dir(tmp_path / "src", dest)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~umask


# --------------------------------------------------------------------------------------------
# extract_safe: accepted archives


def _info(
    name: str, type_: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.mode = mode
    return info


def _write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def test_extract_gnu_tar_dot_archive(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = _make_tree(src)
    archive = tmp_path / "dot.tar.gz"
    subprocess.run(["tar", "-C", str(src), "-czf", str(archive), "."], check=True)

    extract_safe(archive, tmp_path / "out")

    assert _read_tree(tmp_path / "out") == files


def test_extract_plain_tar_and_multi_member_gzip(tmp_path: Path) -> None:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("code", tarfile.DIRTYPE, mode=0o755), None),
        (_info("code/a.py"), b"print(1)\n"),
        (_info("model.bin"), _random(100_000)),
    ]
    plain = _write_tar(tmp_path / "plain.tar", members, "w")
    extract_safe(plain, tmp_path / "out1")
    assert (tmp_path / "out1/code/a.py").read_bytes() == b"print(1)\n"

    # Two gzip members concatenated (what parallel gzip tools may emit) are one stream.
    raw = plain.read_bytes()
    multi = tmp_path / "multi.tar.gz"
    multi.write_bytes(gzip.compress(raw[:5000]) + gzip.compress(raw[5000:]))
    extract_safe(multi, tmp_path / "out2")
    assert _read_tree(tmp_path / "out2") == _read_tree(tmp_path / "out1")


@pytest.mark.parametrize("damage", ["truncate", "flip-crc"])
def test_corrupt_archive_raises_and_leaves_nothing(tmp_path: Path, damage: str) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    (src / "big.csv").write_bytes(_text(2 * 1024 * 1024))
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tf:
        tf.add(src, arcname=".")
    # Lots of zero padding after the end-of-archive marker (as a large blocking factor gives):
    # tarfile stops reading long before the gzip trailer, so the CRC is only checked if
    # extract_safe reads the stream to its end.
    data = bytearray(gzip.compress(plain.read_bytes() + bytes(8 * 1024 * 1024)))
    if damage == "truncate":
        data = data[: len(data) // 3]
    else:
        data[-8] ^= 0xFF  # the CRC-32 in the gzip trailer
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    work = tmp_path / "work"
    work.mkdir()

    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        extract_safe(bad, work / "dest")

    assert list(work.iterdir()) == []


def test_extract_into_existing_empty_dir_and_refuses_non_empty(tmp_path: Path) -> None:
    archive = _write_tar(tmp_path / "a.tar.gz", [(_info("m.txt"), b"m")])
    empty = tmp_path / "empty"
    empty.mkdir()
    extract_safe(archive, empty)
    assert (empty / "m.txt").read_bytes() == b"m"
    with pytest.raises(FileExistsError):
        extract_safe(archive, empty)


def test_setuid_and_world_write_bits_are_stripped(tmp_path: Path) -> None:
    archive = _write_tar(
        tmp_path / "a.tar.gz",
        [(_info("run.sh", mode=0o6777), b"#!/bin/sh\n"), (_info("data.txt", mode=0o666), b"d")],
    )
    extract_safe(archive, tmp_path / "out")
    assert stat.S_IMODE(os.stat(tmp_path / "out/run.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "out/data.txt").st_mode) == 0o644


def test_internal_links_are_allowed(tmp_path: Path) -> None:
    archive = _write_tar(
        tmp_path / "a.tar.gz",
        [
            (_info("blobs", tarfile.DIRTYPE, mode=0o755), None),
            (_info("blobs/abc"), b"weights"),
            (_info("latest", tarfile.SYMTYPE, "blobs"), None),
            (_info("model.bin", tarfile.SYMTYPE, "latest/abc"), None),
            (_info("sub/up", tarfile.SYMTYPE, "../blobs/abc"), None),
            (_info("copy.bin", tarfile.LNKTYPE, "blobs/abc"), None),
        ],
    )
    out = tmp_path / "out"
    extract_safe(archive, out)
    assert (out / "model.bin").read_bytes() == b"weights"
    assert (out / "sub/up").read_bytes() == b"weights"
    assert (out / "copy.bin").read_bytes() == b"weights"


# --------------------------------------------------------------------------------------------
# extract_safe: hostile archives

_HOSTILE: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
    "dotdot": [(_info("../x"), b"evil")],
    "dotdot-nested": [(_info("a/../../x"), b"evil")],
    "absolute": [(_info("/abs/x"), b"evil")],
    "symlink-escape": [(_info("evil", tarfile.SYMTYPE, "../../etc/passwd"), None)],
    "symlink-absolute": [(_info("evil", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "symlink-nested-escape": [(_info("a/b/evil", tarfile.SYMTYPE, "../../.."), None)],
    "hardlink-outside": [(_info("h", tarfile.LNKTYPE, "../outside.txt"), None)],
    "hardlink-absolute": [(_info("h", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "hardlink-unknown": [(_info("h", tarfile.LNKTYPE, "never-extracted"), None)],
    "char-device": [(_info("null", tarfile.CHRTYPE), None)],
    "block-device": [(_info("sda", tarfile.BLKTYPE), None)],
    "fifo": [(_info("pipe", tarfile.FIFOTYPE), None)],
    "write-through-symlink": [
        (_info("d", tarfile.SYMTYPE, "sub"), None),
        (_info("d/file"), b"evil"),
    ],
    "replace-symlink-with-file": [
        (_info("link", tarfile.SYMTYPE, "target"), None),
        (_info("link"), b"evil"),
    ],
    # Each link stays inside when checked alone, but once 'c' -> '.' exists the kernel resolves
    # 'a' as <dest>/./../x, i.e. outside.
    "retroactive-symlink": [
        (_info("a", tarfile.SYMTYPE, "c/../x"), None),
        (_info("c", tarfile.SYMTYPE, "."), None),
    ],
    "symlink-chain-escape": [
        (_info("l1", tarfile.SYMTYPE, "."), None),
        (_info("l2", tarfile.SYMTYPE, "l1/l1/l1/.."), None),
    ],
    "symlink-loop": [
        (_info("x/l", tarfile.SYMTYPE, "../y/l"), None),
        (_info("y/l", tarfile.SYMTYPE, "../x/l"), None),
        (_info("z", tarfile.SYMTYPE, "x/l/q"), None),
    ],
    "bad-member-after-good-ones": [
        (_info("model.pkl"), b"fine"),
        (_info("code", tarfile.DIRTYPE, mode=0o755), None),
        (_info("code/x.py"), b"fine"),
        (_info("../../escape"), b"evil"),
    ],
}


@pytest.mark.parametrize("case", sorted(_HOSTILE))
def test_extract_safe_rejects(tmp_path: Path, case: str) -> None:
    members = _HOSTILE[case]
    archive = _write_tar(tmp_path / "evil.tar.gz", members)
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "dest"

    with pytest.raises(UnsafeArchiveError) as err:
        extract_safe(archive, dest)

    bad = err.value.member
    assert bad in {info.name for info, _ in members}
    assert repr(bad) in str(err.value)
    # Nothing is left behind: no dest, no staging directory, nothing written next to it.
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz", "work"]


def test_rejection_leaves_existing_empty_dest_empty(tmp_path: Path) -> None:
    archive = _write_tar(tmp_path / "evil.tar", _HOSTILE["bad-member-after-good-ones"], "w")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="escape"):
        extract_safe(archive, dest)
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "evil.tar"]


def test_unsafe_archive_error_is_a_value_error() -> None:
    assert issubclass(UnsafeArchiveError, ValueError)


def _header_cases() -> list[tarfile.TarInfo]:
    cases = []
    for name, type_, linkname in [
        ("model.pkl", tarfile.REGTYPE, ""),
        ("code", tarfile.DIRTYPE, ""),
        ("code/", tarfile.DIRTYPE, ""),
        ("n" * 100, tarfile.REGTYPE, ""),
        ("n" * 101, tarfile.REGTYPE, ""),  # needs pax
        ("d" * 100, tarfile.DIRTYPE, ""),  # 101 with the slash: needs pax
        ("modèle.bin", tarfile.REGTYPE, ""),  # non-ASCII: needs pax
        ("link", tarfile.SYMTYPE, "target/file"),
        ("link", tarfile.SYMTYPE, "t" * 101),
        ("hard", tarfile.LNKTYPE, "model.pkl"),
    ]:
        info = _info(name, type_, linkname, mode=0o755)
        info.uid, info.gid, info.uname, info.gname = 1000, 100, "user", "users"
        info.mtime = 1_700_000_000
        info.size = 12345 if type_ == tarfile.REGTYPE else 0
        cases.append(info)
    odd = _info("odd", mode=0o4755)
    odd.uid, odd.uname, odd.size, odd.mtime = 8**7, "ü" * 3, 8**11, 0  # all need pax
    cases.append(odd)
    return cases


@pytest.mark.parametrize("info", _header_cases(), ids=lambda i: i.name[:12])
def test_fast_tar_header_matches_tarfile(info: tarfile.TarInfo) -> None:
    assert tarball_mod.tar_header(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
