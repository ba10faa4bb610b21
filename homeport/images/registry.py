"""The local image registry: named, tagged copies of folders, with their venv and settings.

Layout under ``images_dir``::

    meta/<name>@<tag>.json   one metadata file per image ("/" in names written as "+")
    roots/<id>/              the copied folder an image runs from (never modified after the copy)
    roots/<id>.lock          shared flock held by whoever runs the image (see :func:`hold`)
    tmp/                     copies in progress (renamed into roots/ when complete)
    .lock                    serialises changes to meta/ and roots/ between writers

Readers take no lock: a metadata file is replaced with an atomic rename, so a reader sees the
old image or the new one, never a mixture. A replaced or removed image's root is deleted only
when nobody holds it; a root still in use is collected by a later change.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Any

from homeport.errors import ImageNotFound, ValidationException
from homeport.images.model import LocalImage
from homeport.images.venvs import VenvCache

DEFAULT_TAG = "latest"
DEFAULT_AT = "/opt/program"
_SCHEMA = 1

# Docker's reference grammar: lowercase alphanumeric components joined by ".", "_", "__" or
# runs of "-", and path components joined by "/".
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# Docker's tag grammar (a subset of [A-Za-z0-9_.-]{1,128}: no leading "." or "-").
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_MAX = 255
_DELETING = ".deleting."
# Staging copies older than this are leftovers of a crashed add.
_STALE_STAGING_SECONDS = 24 * 3600

# SageMaker mounts these itself; an image placed at or under them would hide or be hidden.
_SAGEMAKER_DIRS = tuple(
    PurePosixPath(p) for p in ("/opt/ml/input", "/opt/ml/model", "/opt/ml/output", "/opt/ml/checkpoints")
)
# Host system folders the sandbox shares or the runtime owns.
_SYSTEM_DIRS = tuple(
    PurePosixPath(p)
    for p in (
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/tmp",
        "/etc",
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/boot",
        "/var",
    )
)

Progress = Callable[[str], None]


# -- validation ---------------------------------------------------------------------------


def validate_name(name: str) -> str:
    if not name or len(name) > _NAME_MAX or not _NAME_RE.fullmatch(name):
        raise ValidationException(
            f"Invalid image name {name!r}: use lowercase letters, digits and the separators "
            "'.', '_', '-' and '/' (each part starting and ending with a letter or digit), "
            f"at most {_NAME_MAX} characters"
        )
    return name


def validate_tag(tag: str) -> str:
    if not _TAG_RE.fullmatch(tag):
        raise ValidationException(
            f"Invalid image tag {tag!r}: use 1 to 128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    return tag


def validate_sandbox_path(value: str, what: str) -> str:
    """An absolute path inside the sandbox that an image may occupy; returned normalised."""
    if not value.startswith("/") or "\0" in value:
        raise ValidationException(f"Invalid {what} {value!r}: must be an absolute path")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationException(f"Invalid {what} {value!r}: '..' is not allowed")
    path = PurePosixPath("/", *parts)
    if path == PurePosixPath("/"):
        raise ValidationException(f"Invalid {what} {value!r}: cannot be the root folder '/'")
    for reserved in _SAGEMAKER_DIRS:
        if path == reserved or reserved in path.parents or path in reserved.parents:
            raise ValidationException(
                f"Invalid {what} {value!r}: conflicts with {reserved}, which SageMaker mounts itself"
            )
    for system in _SYSTEM_DIRS:
        if path == system or system in path.parents:
            raise ValidationException(f"Invalid {what} {value!r}: {system} belongs to the system")
    return str(path)


def validate_env(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in env.items():
        if not _ENV_KEY_RE.fullmatch(key):
            raise ValidationException(f"Invalid environment variable name {key!r}")
        if "\0" in value:
            raise ValidationException(f"Invalid value for environment variable {key}: contains NUL")
        out[key] = value
    return out


def split_reference(reference: str) -> tuple[str, str]:
    """``NAME[:tag][@digest]`` → (NAME, tag); the registry host, if any, stays in NAME.

    A digest is ignored: local images have none, so the tag (default latest) decides.
    """
    ref = reference.strip()
    if "@" in ref:
        ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    # A ":" before the last "/" is a registry port (localhost:5000/name), not a tag.
    if colon > slash:
        return ref[:colon], ref[colon + 1 :] or DEFAULT_TAG
    return ref, DEFAULT_TAG


def candidate_names(name: str) -> list[str]:
    """Names to try for a reference, most specific first.

    ``123456789012.dkr.ecr.us-east-1.amazonaws.com/team/model`` → ``team/model``, ``model``
    (the name as written is tried first, in case it was registered with its host).
    """
    out = [name]
    parts = name.split("/")
    if len(parts) > 1:
        first = parts[0]
        if "." in first or ":" in first or first == "localhost":
            out.append("/".join(parts[1:]))
        out.append(parts[-1])
    return list(dict.fromkeys(n for n in out if n))


def _meta_stem(name: str, tag: str) -> str:
    # "+" and "@" can appear in neither names nor tags, so the encoding cannot collide.
    return f"{name.replace('/', '+')}@{tag}"


# -- holding a root -----------------------------------------------------------------------


def _root_lock(root: Path) -> Path:
    return root.with_name(root.name + ".lock")


@contextmanager
def hold(image: LocalImage) -> Iterator[LocalImage]:
    """Keep ``image.root`` from being deleted while the block runs (e.g. for a job's lifetime).

    Replacing or removing an image deletes its old root only when nobody holds it. Raises
    ImageNotFound if the root was already deleted (the image was replaced meanwhile:
    resolve again).
    """
    fd = os.open(_root_lock(image.root), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not image.root.is_dir():
            raise ImageNotFound(
                f"Image '{image.reference}' was replaced or removed while starting; try again"
            )
        yield image
    finally:
        os.close(fd)


# -- the registry -------------------------------------------------------------------------


class ImageRegistry:
    def __init__(self, images_dir: Path, venvs: VenvCache) -> None:
        self.images_dir = Path(images_dir)
        self.venvs = venvs
        self._meta = self.images_dir / "meta"
        self._roots = self.images_dir / "roots"
        self._tmp = self.images_dir / "tmp"

    # -- reading ----------------------------------------------------------------------------

    def resolve(self, reference: str) -> LocalImage:
        """The image a reference names: NAME, NAME:tag, or a registry URI ending in one."""
        found = self._find(reference)
        if found is None:
            raise self._not_found(reference)
        return found

    def list(self) -> builtins.list[LocalImage]:
        if not self._meta.is_dir():
            return []
        images = []
        for path in self._meta.glob("*.json"):
            image = self._load(path)
            if image is not None:
                images.append(image)
        return sorted(images, key=lambda i: (i.name, i.tag))

    def _find(self, reference: str) -> LocalImage | None:
        name, tag = split_reference(reference)
        for candidate in candidate_names(name):
            if not _NAME_RE.fullmatch(candidate) or not _TAG_RE.fullmatch(tag):
                continue
            image = self._load(self._meta / f"{_meta_stem(candidate, tag)}.json")
            if image is not None:
                return image
        return None

    def _not_found(self, reference: str) -> ImageNotFound:
        name, tag = split_reference(reference)
        names = candidate_names(name)
        tried = " or ".join(f"'{n}:{tag}'" for n in names)
        short = names[-1] if _NAME_RE.fullmatch(names[-1]) else "NAME"
        return ImageNotFound(
            f"Image '{reference}' is not available: no local image named {tried} is registered "
            f"(add one with: homeport image add {short}:{tag} FOLDER)"
        )

    def _load(self, path: Path) -> LocalImage | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent (the usual case when probing candidates) or unreadable
        try:
            venv = data.get("venv")
            return LocalImage(
                name=str(data["name"]),
                tag=str(data["tag"]),
                root=self.images_dir / str(data["root"]),
                at=str(data["at"]),
                env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
                workdir=data.get("workdir"),
                venv=Path(venv) if venv else None,
                created=float(data.get("created", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    # -- changing ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        folder: Path,
        *,
        tag: str = DEFAULT_TAG,
        at: str = DEFAULT_AT,
        requirements: Path | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        progress: Progress | None = None,
    ) -> LocalImage:
        """Register a copy of ``folder`` as NAME:tag, replacing any image of that reference."""
        validate_name(name)
        validate_tag(tag)
        at = validate_sandbox_path(at, "location (--at)")
        if workdir is not None:
            workdir = validate_sandbox_path(workdir, "working directory")
        clean_env = validate_env(env or {})
        source = Path(folder)
        if not source.is_dir():
            raise ValidationException(f"Image folder {str(folder)!r} does not exist or is not a folder")
        requirements_text = ""
        if requirements is not None:
            try:
                requirements_text = Path(requirements).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValidationException(
                    f"Cannot read requirements file {str(requirements)!r}: {exc}"
                ) from exc

        # Snapshot the folder first, so the image is the folder as it was when added.
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._roots.mkdir(parents=True, exist_ok=True)
        self._meta.mkdir(parents=True, exist_ok=True)
        stem = _meta_stem(name, tag)
        staging = Path(tempfile.mkdtemp(prefix=f"{stem}.", dir=self._tmp))
        try:
            copy = staging / "files"
            copy_folder(source, copy)
            venv = self.venvs.ensure(requirements_text, progress)

            root_id = f"{stem}.{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:8]}"
            image = LocalImage(
                name=name,
                tag=tag,
                root=self._roots / root_id,
                at=at,
                env=clean_env,
                workdir=workdir,
                venv=venv,
                created=time.time(),
            )
            record = {
                "schema": _SCHEMA,
                "name": name,
                "tag": tag,
                "root": f"roots/{root_id}",
                "at": at,
                "env": clean_env,
                "workdir": workdir,
                "venv": str(venv),
                "requirements": requirements_text,
                "source": str(source.resolve()),
                "created": image.created,
            }
            with self._writer():
                os.rename(copy, image.root)
                _write_atomically(self._meta / f"{stem}.json", json.dumps(record, indent=2) + "\n")
                self._collect()
                self._clean_staging(keep=staging)
            return image
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def remove(self, reference: str) -> LocalImage:
        """Unregister an image (its venv stays cached for other images)."""
        with self._writer():
            image = self._find(reference)
            if image is None:
                raise self._not_found(reference)
            (self._meta / f"{_meta_stem(image.name, image.tag)}.json").unlink()
            self._collect()
        return image

    @contextmanager
    def _writer(self) -> Iterator[None]:
        self.images_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.images_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _collect(self) -> None:
        """Delete roots no image points at and nobody holds. Caller holds the writer lock."""
        if not self._roots.is_dir():
            return
        used = {image.root.name for image in self.list()}
        for entry in sorted(self._roots.iterdir()):
            if entry.name.startswith(_DELETING):
                shutil.rmtree(entry, ignore_errors=True)  # left by a crash mid-delete
            elif entry.name.endswith(".lock"):
                if not entry.with_name(entry.name[: -len(".lock")]).exists():
                    _delete_if_free(entry, None)
            elif entry.name not in used:
                _delete_if_free(_root_lock(entry), entry)

    def _clean_staging(self, keep: Path) -> None:
        cutoff = time.time() - _STALE_STAGING_SECONDS
        for entry in self._tmp.iterdir():
            with suppress(OSError):
                if entry != keep and entry.lstat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)


def _delete_if_free(lock: Path, root: Path | None) -> None:
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # held by a running job: a later change collects it
        if root is not None and root.exists():
            # Rename first so a concurrent hold() sees the root gone, never half-deleted.
            doomed = root.with_name(f"{_DELETING}{root.name}")
            os.rename(root, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        with suppress(FileNotFoundError):
            lock.unlink()
    finally:
        os.close(fd)


# -- copying ------------------------------------------------------------------------------


def copy_folder(source: Path, dest: Path) -> None:
    """Copy ``source`` to a new folder ``dest``, keeping modes and internal symlinks.

    Symlinks must stay inside ``source``; absolute ones are rewritten as relative so they keep
    pointing into the copy (and work wherever the copy is mounted). Sockets, FIFOs and
    devices are refused.
    """
    base = source.resolve()
    links: dict[Path, str] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        here = Path(dirpath)
        for entry in dirnames + filenames:
            path = here / entry
            st = path.lstat()
            rel = path.relative_to(base)
            if stat.S_ISLNK(st.st_mode):
                links[rel] = _internal_link_target(base, path, rel)
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise ValidationException(
                    f"Cannot copy {str(rel)!r} from the image folder: not a regular file, folder or symlink"
                )
    try:
        shutil.copytree(base, dest, symlinks=True)
    except shutil.Error as exc:
        raise ValidationException(f"Copying the image folder {str(source)!r} failed: {exc}") from exc
    for rel, target in links.items():
        link = dest / rel
        if os.readlink(link) != target:
            link.unlink()
            link.symlink_to(target)


def _internal_link_target(base: Path, link: Path, rel: Path) -> str:
    """The link's target, relative to the link's folder; ValidationException if it escapes."""
    raw = os.readlink(link)
    resolved = Path(os.path.realpath(link))
    if not _within(base, resolved):
        raise ValidationException(
            f"Symlink {str(rel)!r} in the image folder points outside it (to {raw!r}); "
            "an image may only link to its own files"
        )
    # A relative link that never climbs above the folder works in the copy as written;
    # anything else (absolute, or "../folder/x") is rewritten relative to the link.
    if not os.path.isabs(raw) and _stays_below(len(rel.parts) - 1, raw):
        return raw
    return os.path.relpath(resolved, link.parent)


def _stays_below(depth: int, relative: str) -> bool:
    for part in relative.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


def _within(base: Path, path: Path) -> bool:
    return path == base or base in path.parents


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
