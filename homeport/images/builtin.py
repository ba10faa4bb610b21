"""Built-in images on demand: a reference to a SageMaker built-in resolves to Homeport's own.

:class:`BuiltinImages` wraps the runtime's image source. An image the user has (registered with
``homeport image add`` or built in the engine) always wins; when there is none and the
reference names a built-in (:mod:`homeport.builtins.catalog`), the built-in is materialised
once per content digest, under the name ``homeport-builtin/<key>:<digest>``:

* process runtime — the image folder plus the toolkit, registered in the local registry with
  its requirements installed in a cached venv;
* docker runtime — the same folder built through the engine from its Dockerfile (RUN steps use
  the host's network for pip; the base image is local).

The first job that needs a built-in pays for the venv or the build (tens of seconds); later
ones resolve it in milliseconds. Concurrent first uses build it once.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from homeport.builtins.catalog import REQUIREMENTS, Builtin, find
from homeport.errors import ImageNotFound, InternalFailure
from homeport.images.engine import BuildFailed, EngineImages
from homeport.images.model import Image
from homeport.images.registry import ImageRegistry
from homeport.images.source import ImageSource

log = logging.getLogger(__name__)

TOOLKIT_REQUIREMENTS = Path(__file__).resolve().parents[1] / "builtins" / "toolkit" / REQUIREMENTS
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

Materialise = Callable[[Builtin, Path], Image]


def merged_requirements(image_file: Path, toolkit_file: Path = TOOLKIT_REQUIREMENTS) -> str:
    """The image's requirements, then the toolkit's for packages the image does not pin itself."""
    lines: list[str] = []
    seen: set[str] = set()
    for path in (image_file, toolkit_file):
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _NAME.match(line.split("#", 1)[0])
            if match is None:
                continue
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            if name not in seen:
                seen.add(name)
                lines.append(line.strip())
    return "\n".join(lines) + "\n"


def assemble(builtin: Builtin, dest: Path) -> Path:
    """The built-in's folder plus the toolkit, with the merged requirements file."""
    builtin.assemble(dest)
    (dest / REQUIREMENTS).write_text(merged_requirements(builtin.folder / REQUIREMENTS), encoding="utf-8")
    return dest


class BuiltinImages:
    """An ImageSource that falls back to Homeport's built-ins."""

    def __init__(self, inner: ImageSource, materialise: Materialise, work_dir: Path) -> None:
        self.inner = inner
        self._materialise = materialise
        self._work_dir = work_dir
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def resolve(self, reference: str) -> Image:
        try:
            return self.inner.resolve(reference)
        except ImageNotFound:
            builtin = find(reference)
            if builtin is None:
                raise
        with self._guard:
            lock = self._locks.setdefault(builtin.key, threading.Lock())
        with lock:
            self._work_dir.mkdir(parents=True, exist_ok=True)
            return self._materialise(builtin, self._work_dir)


def local_builtin(registry: ImageRegistry) -> Materialise:
    """Materialise built-ins as local folder images (the process runtime)."""

    def materialise(builtin: Builtin, work_dir: Path) -> Image:
        reference = f"{builtin.image_name()}:{builtin.digest()}"
        try:
            return registry.resolve(reference)
        except ImageNotFound:
            pass
        log.info("preparing built-in image %s (a venv with its requirements)", reference)
        with tempfile.TemporaryDirectory(prefix=f"builtin-{builtin.key}-", dir=work_dir) as tmp:
            folder = assemble(builtin, Path(tmp) / builtin.key)
            try:
                return registry.add(
                    builtin.image_name(), folder, tag=builtin.digest(), requirements=folder / REQUIREMENTS
                )
            except Exception as exc:
                raise InternalFailure(
                    f"ClientError: preparing the built-in image {builtin.key} failed: {exc}"
                ) from exc

    return materialise


def engine_builtin(images: EngineImages) -> Materialise:
    """Materialise built-ins as engine images built from their Dockerfiles (the docker runtime)."""

    def materialise(builtin: Builtin, work_dir: Path) -> Image:
        reference = f"{builtin.image_name()}:{builtin.digest()}"
        try:
            return images.resolve(reference)
        except ImageNotFound:
            pass
        log.info("building built-in image %s", reference)
        with tempfile.TemporaryDirectory(prefix=f"builtin-{builtin.key}-", dir=work_dir) as tmp:
            context = assemble(builtin, Path(tmp) / builtin.key)
            copy_local_wheels(context)
            try:
                return images.build(context, reference, network_mode="host", on_line=log.debug)
            except BuildFailed as exc:
                raise InternalFailure(
                    f"ClientError: building the built-in image {builtin.key} failed: {exc}"
                ) from exc

    return materialise


def copy_local_wheels(context: Path) -> None:
    """Wheels in the machine's local wheel folders (``PIP_FIND_LINKS``) of packages the context's
    requirements name go to ``context/wheels``, so a build installs them without downloading
    (torch's CPU build, for one, where PyPI would send a multi-GB CUDA build)."""
    dest = context / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    names = set()
    for line in (context / REQUIREMENTS).read_text(encoding="utf-8").splitlines():
        match = _NAME.match(line.split("#", 1)[0])
        if match is not None:
            names.add(re.sub(r"[-_.]+", "_", match.group(1)).lower())
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        path = Path(folder)
        if path.is_dir():
            for wheel in path.glob("*.whl"):
                if wheel.name.split("-", 1)[0].lower() in names:
                    shutil.copy2(wheel, dest / wheel.name)
