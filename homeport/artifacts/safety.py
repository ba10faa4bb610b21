"""The extraction policy: which tar members may be written, and :class:`UnsafeArchiveError`.

tarfile's ``"data"`` filter checks each member against the *disk* with ``os.path.realpath``,
which patch releases before mid-2025 got wrong in corner cases (e.g. CVE-2025-4138,
CVE-2025-4517: symlink chains, PATH_MAX overflow), and it judges each member alone, so a later
symlink can redirect an earlier one (see the "retroactive-symlink" test, which gets past the
plain filter on 3.11.7). So, in addition to running that filter, this policy keeps a virtual
model of the tree the archive builds and resolves every link itself:

* names must be relative with no ``..`` component, and may not pass through an archive symlink
  (``tar -c`` never produces such members);
* a symlink's target is resolved component by component, following earlier archive symlinks,
  and must stay inside the destination; a later symlink may not be planted on a path an earlier
  member already used as a directory (that would change what the earlier link resolves to);
* a hard link must name an earlier regular-file member;
* only regular files, directories, symlinks and hard links are accepted.

Extraction happens into a fresh staging directory, so the model starts empty and stays exact.
"""

from __future__ import annotations

import os
import tarfile

_MAX_SYMLINK_HOPS = 40  # Linux's own ELOOP limit

Parts = tuple[str, ...]


class UnsafeArchiveError(ValueError):
    """An archive member that would escape the destination or is not plain data."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"unsafe archive member {member!r}: {reason}")
        self.member = member
        self.reason = reason


def split_member_name(name: str, member: str | None = None, what: str = "path") -> Parts:
    """Split a member (or hard link target) name into components; reject absolute and ``..``.

    ``member`` is the member to blame in the error when ``name`` is not its own name.
    """
    blame = name if member is None else member
    if name.startswith("/") or os.path.isabs(name):
        raise UnsafeArchiveError(blame, f"absolute {what} {name!r}")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(blame, f"'..' in {what} {name!r}")
    return parts


class ArchivePolicy:
    """A ``tarfile`` extraction filter (``extractall(filter=ArchivePolicy())``), one per archive."""

    def __init__(self) -> None:
        self._symlinks: dict[Parts, str] = {}
        self._files: set[Parts] = set()  # regular files: valid hard link targets
        self._seen: set[Parts] = set()  # every member name
        self._used_as_dir: set[Parts] = set()  # prefixes members/links went through

    def __call__(self, member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
        name = member.name
        parts = split_member_name(name)
        if not parts:
            if not member.isdir():
                raise UnsafeArchiveError(name, "archive root entry is not a directory")
            return None  # './': the destination itself; keep its own mode
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchiveError(name, "special file (device, FIFO or unknown type)")
        self._check_dirs(name, parts[:-1])
        if parts in self._symlinks:
            raise UnsafeArchiveError(name, "replaces an earlier symlink")
        if member.issym():
            self._check_symlink(member, parts)
        elif member.islnk():
            self._check_hardlink(member)
        try:
            filtered = tarfile.data_filter(member, dest_path)
        except tarfile.FilterError as exc:
            raise UnsafeArchiveError(name, str(exc)) from exc
        self._record(member, parts)
        return filtered

    def _check_dirs(self, name: str, dirs: Parts) -> None:
        for i in range(1, len(dirs) + 1):
            if dirs[:i] in self._symlinks:
                raise UnsafeArchiveError(name, f"path goes through symlink {'/'.join(dirs[:i])!r}")

    def _check_symlink(self, member: tarfile.TarInfo, parts: Parts) -> None:
        name, target = member.name, member.linkname
        if parts in self._seen or parts in self._used_as_dir:
            raise UnsafeArchiveError(name, "symlink replaces an earlier member or directory")
        if not target:
            raise UnsafeArchiveError(name, "symlink with empty target")
        if target.startswith("/") or os.path.isabs(target):
            raise UnsafeArchiveError(name, f"symlink to absolute path {target!r}")
        self._resolve(name, parts[:-1], target, [0])

    def _resolve(self, name: str, base: Parts, target: str, hops: list[int]) -> Parts:
        """Resolve ``target`` relative to directory ``base`` the way the kernel would."""
        cur = list(base)
        comps = [c for c in target.split("/") if c not in ("", ".")]
        for i, comp in enumerate(comps):
            if comp == "..":
                if not cur:
                    raise UnsafeArchiveError(name, f"symlink target {target!r} leaves the destination")
                cur.pop()
            else:
                cur.append(comp)
                link = self._symlinks.get(tuple(cur))
                if link is not None:
                    hops[0] += 1
                    if hops[0] > _MAX_SYMLINK_HOPS:
                        raise UnsafeArchiveError(name, "too many levels of symlinks")
                    cur = list(self._resolve(name, tuple(cur[:-1]), link, hops))
            if i < len(comps) - 1:
                self._used_as_dir.add(tuple(cur))
        return tuple(cur)

    def _check_hardlink(self, member: tarfile.TarInfo) -> None:
        target = split_member_name(member.linkname, member.name, "hard link target")
        self._check_dirs(member.name, target[:-1])
        if target not in self._files:
            raise UnsafeArchiveError(
                member.name, f"hard link to {member.linkname!r}, which is not an earlier regular file"
            )

    def _record(self, member: tarfile.TarInfo, parts: Parts) -> None:
        self._seen.add(parts)
        for i in range(1, len(parts)):
            self._used_as_dir.add(parts[:i])
        if member.issym():
            self._symlinks[parts] = member.linkname
        elif member.isreg() or member.islnk():
            self._files.add(parts)
        else:
            self._files.discard(parts)
