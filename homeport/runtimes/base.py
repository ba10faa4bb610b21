"""The runtime contract: start one sandboxed process tree from an image, watch it, stop it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from homeport.images.model import LocalImage


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # inside the sandbox, absolute
    read_only: bool = False


@dataclass(frozen=True)
class RunSpec:
    """One host of a job (or one serving instance)."""

    name: str  # unique label, e.g. "training-job/my-job/algo-1"
    image: LocalImage
    argv: list[str]  # ["train"], or ContainerEntrypoint + ContainerArguments
    env: dict[str, str]
    mounts: list[Mount]
    hostname: str = "algo-1"
    # hostname → IPv4 written into the sandbox's /etc/hosts (hostname itself always resolves)
    hosts: dict[str, str] = field(default_factory=dict)
    # "host": share the host network; "none": private namespace with loopback only
    network: str = "host"
    # A scratch folder owned by this run (private /tmp lives here, hosts file, etc.)
    scratch: Path = Path("/tmp")


class RunHandle(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def output(self) -> IO[bytes]:
        """stdout and stderr of the process tree, merged, as a binary pipe."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit code (negative = killed by that signal), or None if still running at timeout."""

    def terminate(self) -> None:
        """SIGTERM to the whole process tree."""

    def kill(self) -> None:
        """SIGKILL to the whole process tree; after it returns, nothing of the run is left."""


class Runtime(Protocol):
    name: str

    def check(self) -> None:
        """Raise RuntimeUnavailable with a clear message when this machine cannot run work."""

    def start(self, spec: RunSpec) -> RunHandle: ...
