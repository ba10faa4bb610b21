"""What a resolved local image is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LocalImage:
    name: str  # e.g. "my-training-image"
    tag: str  # e.g. "latest"
    root: Path  # the image's files (a copy of the registered folder)
    at: str  # where the files appear inside the sandbox, e.g. "/opt/program"
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None  # inside the sandbox; default = ``at``
    venv: Path | None = None  # a virtualenv whose bin/ comes first on PATH
    created: float = 0.0

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True)
class EngineImage:
    """An image held by a Docker-compatible engine, pinned to its ID when resolved."""

    name: str  # the reference as found in the engine, e.g. "localhost/my-image"
    tag: str
    id: str  # "sha256:..."; containers are created from the ID, so a re-tag cannot swap it
    created: float = 0.0

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


Image = LocalImage | EngineImage
