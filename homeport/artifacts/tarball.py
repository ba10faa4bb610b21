"""Model artifact tarballs: fast ``pack_dir`` and hardened ``extract_safe``.

``pack_dir`` writes the same layout SageMaker's ``model.tar.gz`` has (member names relative to
the folder, e.g. ``model.pkl``, ``code/inference.py``; no ``./`` prefix) as a standard POSIX/pax
tar stream, gzip-compressed on all cores by :mod:`homeport.artifacts.pgzip`. Tar headers are
byte-identical to :meth:`tarfile.TarInfo.tobuf` output (with a fast path for plain members);
file bytes are read straight into the compression blocks, so Python only moves buffers around.

``extract_safe`` refuses archives that could write outside the destination (see
:mod:`homeport.artifacts.safety`) and extracts through a staging directory, so a rejected or
broken archive leaves nothing behind.
"""

from __future__ import annotations

import functools
import grp
import gzip
import io
import os
import pwd
import shutil
import stat
import struct
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from homeport.artifacts.pgzip import DEFAULT_BLOCK_SIZE, ParallelGzipWriter
from homeport.artifacts.safety import ArchivePolicy, UnsafeArchiveError

__all__ = ["UnsafeArchiveError", "extract_safe", "pack_dir"]

_GZIP_MAGIC = b"\x1f\x8b"
_COPY_BUFSIZE = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Packing


@functools.lru_cache(maxsize=256)
def _uname(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.lru_cache(maxsize=256)
def _gname(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def _current_umask() -> int:
    # os.umask() can only be read by setting it, which races with other threads creating files.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class _BlockSink:
    """Cuts the tar byte stream into fixed-size blocks for the gzip writer."""

    def __init__(self, gz: ParallelGzipWriter, block_size: int) -> None:
        self._gz = gz
        self._size = block_size
        self._new_block()

    def _new_block(self) -> None:
        # A fresh block per submit: the worker thread owns the old one until it is compressed.
        self._buf = bytearray(self._size)
        self._view = memoryview(self._buf)
        self._pos = 0

    def _submit_full(self) -> None:
        self._gz.submit(self._buf)
        self._new_block()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = min(len(view), self._size - self._pos)
            self._view[self._pos : self._pos + n] = view[:n]
            self._pos += n
            view = view[n:]
            if self._pos == self._size:
                self._submit_full()

    def copy_file(self, fh: io.RawIOBase, size: int, path: str) -> None:
        """Read exactly ``size`` bytes of ``fh`` directly into blocks."""
        remaining = size
        while remaining:
            n = min(remaining, self._size - self._pos)
            got = fh.readinto(self._view[self._pos : self._pos + n])
            if got is None:  # non-blocking source; never a regular file
                raise OSError(f"{path}: not a regular file")
            if not got:
                raise OSError(f"{path}: file shrank while it was being packed")
            self._pos += got
            remaining -= got
            if self._pos == self._size:
                self._submit_full()

    def finish(self) -> None:
        if self._pos:
            self._gz.submit(self._buf[: self._pos])
        self._pos = 0


def _walk(root: str, prefix: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """Depth-first, name-sorted walk (tar order: a directory before its contents); no follow.

    Plain ``str`` paths: ``Path`` objects cost ~10 us a member in folders of small files.
    """
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        arcname = prefix + entry.name
        st = entry.stat(follow_symlinks=False)
        path = entry.path
        yield path, arcname, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path, arcname + "/")


def _tarinfo(path: str, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname, info.gname = _uname(st.st_uid), _gname(st.st_gid)
    # Whole seconds: a float mtime would cost a pax record per member for no reader's benefit.
    info.mtime = int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    else:
        raise ValueError(f"{path}: cannot package special file (device, FIFO or socket)")
    return info


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_USTAR_MAGIC = b"ustar\x0000"


def tar_header(info: tarfile.TarInfo) -> bytes:
    """``info.tobuf(PAX_FORMAT)``, byte for byte, with a fast path for plain members.

    tarfile's header code costs ~40 us a member, which dominates packing folders of many small
    files. Members with ASCII names that fit the ustar fields (nearly all of them) are packed
    here in one struct call; anything else (long or non-ASCII names, huge sizes) goes through
    tarfile, which adds the pax extended header.
    """
    name = info.name + "/" if info.type == tarfile.DIRTYPE and not info.name.endswith("/") else info.name
    if (
        name.isascii()
        and info.linkname.isascii()
        and info.uname.isascii()
        and info.gname.isascii()
        and len(name) <= 100
        and len(info.linkname) <= 100
        and len(info.uname) <= 32
        and len(info.gname) <= 32
        and 0 <= info.uid < 8**7
        and 0 <= info.gid < 8**7
        and 0 <= info.size < 8**11
        and 0 <= info.mtime < 8**11
        and isinstance(info.mtime, int)
        and info.type not in (tarfile.CHRTYPE, tarfile.BLKTYPE)
    ):
        buf = _USTAR.pack(
            name.encode("ascii"),
            b"%07o\0" % (info.mode & 0o7777),
            b"%07o\0" % info.uid,
            b"%07o\0" % info.gid,
            b"%011o\0" % info.size,
            b"%011o\0" % info.mtime,
            b"        ",
            info.type,
            info.linkname.encode("ascii"),
            _USTAR_MAGIC,
            info.uname.encode("ascii"),
            info.gname.encode("ascii"),
            b"",
            b"",
            b"",
        )
        # The checksum is the byte sum with its own field counted as spaces, as packed above.
        return buf[:148] + b"%06o\0 " % sum(buf) + buf[156:]
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _write_tar(sink: _BlockSink, src: Path, skip: tuple[int, int]) -> None:
    hardlinks: dict[tuple[int, int], str] = {}
    written = 0
    for path, arcname, st in _walk(os.fspath(src)):
        key = (st.st_dev, st.st_ino)
        if key == skip:
            continue  # our own temp output, when dest lives inside src
        if stat.S_ISSOCK(st.st_mode):
            continue  # tar skips sockets too: they cannot be recreated from bytes
        info = _tarinfo(path, arcname, st)
        if info.isreg() and st.st_nlink > 1:
            if key in hardlinks:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
            else:
                hardlinks[key] = arcname
        header = tar_header(info)
        sink.write(header)
        written += len(header)
        if info.type == tarfile.REGTYPE and info.size:
            with open(path, "rb", buffering=0) as fh:
                sink.copy_file(fh, info.size, path)
            written += info.size
            pad = -info.size % tarfile.BLOCKSIZE
            if pad:
                sink.write(bytes(pad))
                written += pad
    # End-of-archive marker, then pad to a whole record as GNU tar and tarfile do.
    trailer = 2 * tarfile.BLOCKSIZE
    trailer += -(written + trailer) % tarfile.RECORDSIZE
    sink.write(bytes(trailer))
    sink.finish()


def pack_dir(src: Path, dest: Path, level: int = 6, threads: int | None = None) -> int:
    """Write the contents of folder ``src`` to ``dest`` as a ``.tar.gz``; return bytes written.

    Member names are relative to ``src`` (``model.pkl``, ``code/inference.py``). Symlinks are
    stored as symlinks, hard links as tar hard links; sockets are skipped and devices/FIFOs are
    refused. ``level`` is the deflate level (0-9), ``threads`` the compression threads (default:
    usable CPUs). ``dest``'s folder must exist. ``dest`` appears atomically (temp file in the same
    folder + rename): on any error it is left as it was and no temp file remains. The file is not
    fsync'ed: atomic for readers, not durable across a power cut.
    """
    src, dest = Path(src), Path(dest)
    if not 0 <= level <= 9:
        raise ValueError(f"compression level must be 0..9, got {level}")
    nthreads = threads if threads is not None else _default_threads()
    if nthreads < 1:
        raise ValueError(f"threads must be >= 1, got {nthreads}")
    if not stat.S_ISDIR(os.stat(src).st_mode):
        raise NotADirectoryError(f"{src} is not a directory")
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        tmp_st = os.fstat(fd)
        with open(fd, "wb", buffering=_COPY_BUFSIZE) as out:
            gz = ParallelGzipWriter(out, level, nthreads)
            try:
                _write_tar(_BlockSink(gz, DEFAULT_BLOCK_SIZE), src, (tmp_st.st_dev, tmp_st.st_ino))
                total = gz.close()
            finally:
                gz.abort()
        # mkstemp creates 0600; give the archive the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return total


# ---------------------------------------------------------------------------------------------
# Extraction


_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


def _open_gzip(archive: Path) -> io.BufferedIOBase:
    try:
        from zlib_ng import gzip_ng
    except ImportError:  # pragma: no cover - zlib-ng is a declared dependency
        return gzip.open(archive, "rb")
    return gzip_ng.open(archive, "rb")


def _extract_all(archive: Path, staging: Path) -> None:
    with open(archive, "rb") as probe:
        magic = probe.read(6)
    policy = ArchivePolicy()
    if magic.startswith(_GZIP_MAGIC):
        # Random-access mode over a forward-only-seeked gzip stream: tarfile only ever seeks
        # forward when extracting in order, and unlike its 'r|' stream mode it does not re-slice
        # its read buffer on every read (which made extraction ~2x slower).
        with _open_gzip(archive) as stream:
            with tarfile.TarFile(fileobj=stream, mode="r", copybufsize=_COPY_BUFSIZE) as tf:
                tf.extractall(staging, filter=policy)
            # tarfile stops at the end-of-archive marker; read on so gzip verifies CRC and length.
            while stream.read(_COPY_BUFSIZE):
                pass
    elif magic.startswith((_BZ2_MAGIC, _XZ_MAGIC)):
        with tarfile.open(archive, "r:*") as tf:
            tf.extractall(staging, filter=policy)
    else:
        with tarfile.TarFile(archive, mode="r", copybufsize=_COPY_BUFSIZE) as tf:
            tf.extractall(staging, filter=policy)


def _check_dest(dest: Path) -> bool:
    """True if ``dest`` exists (then it must be an empty directory)."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        raise FileExistsError(f"extraction destination {dest} exists and is not a directory")
    with os.scandir(dest) as it:
        if next(it, None) is not None:
            raise FileExistsError(f"extraction destination {dest} is not empty")
    return True


def extract_safe(archive: Path, dest: Path) -> None:
    """Extract a ``.tar.gz`` (or ``.tar``, ``.tar.bz2``, ``.tar.xz``) into ``dest``, refusing anything unsafe.

    Refused with :class:`UnsafeArchiveError` (naming the member): absolute names, ``..``
    components, symlinks or hard links resolving outside ``dest``, paths through a symlink,
    devices and FIFOs. Mode bits are sanitised by tarfile's ``"data"`` filter (no setuid/setgid/
    sticky, no group/other write) and ownership is not restored.

    ``dest`` must be absent or an empty directory. Members are extracted into a sibling staging
    directory and moved into place only after the whole archive was accepted, so on any error
    ``dest`` is left as it was.
    """
    archive, dest = Path(archive), Path(dest)
    dest_existed = _check_dest(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".extract"))
    try:
        os.chmod(staging, 0o777 & ~_current_umask())
        _extract_all(archive, staging)
        if dest_existed:
            for entry in os.listdir(staging):
                os.replace(staging / entry, dest / entry)
            staging.rmdir()
        else:
            os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
