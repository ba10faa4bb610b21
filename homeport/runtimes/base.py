"""The runtime contract: start one sandboxed process tree from an image, watch it, stop it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from homeport.images.model import Image


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # inside the sandbox, absolute
    read_only: bool = False


@dataclass(frozen=True)
class RunSpec:
    """One host of a job (or one serving instance)."""

    name: str  # unique label, e.g. "training-job/my-job/algo-1"
    image: Image
    # The command: ["train"], ["serve"] or ContainerArguments (`docker run IMAGE ARGS`).
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    hostname: str = "algo-1"
    # hostname → IPv4 written into the sandbox's /etc/hosts (hostname itself always resolves)
    hosts: dict[str, str] = field(default_factory=dict)
    # "host": share the host network; "none": private namespace with loopback only
    network: str = "host"
    # A scratch folder owned by this run (private /tmp lives here, hosts file, etc.)
    scratch: Path = Path("/tmp")
    # ContainerEntrypoint: replaces the image's entrypoint (`docker run --entrypoint`); empty =
    # the image's own. The process runtime runs ``entrypoint + argv``.
    entrypoint: tuple[str, ...] = ()
    # CPU, memory and GPU limits from the instance type; None = unlimited.
    resources: Resources | None = None
    # What the run belongs to, for people and for clean-up: {"kind": ..., "resource": ...}.
    labels: dict[str, str] = field(default_factory=dict)
    # TCP ports the run serves on (8080 for serving instances), reached through RunHandle.address.
    ports: tuple[int, ...] = ()

    @property
    def command_line(self) -> list[str]:
        """What runs when the image has no entrypoint of its own (the process runtime)."""
        return [*self.entrypoint, *self.argv]


@dataclass(frozen=True)
class Resources:
    cpus: float  # vCPUs (fractions allowed)
    memory_bytes: int
    gpus: int = 0


@dataclass(frozen=True)
class Address:
    """Where a run's port is reached from the server.

    ``netns_pid`` > 0: ``host:port`` inside the network namespace of that pid (the socket is
    opened after entering it, see :mod:`homeport.hosting.netns`); 0: ``host:port`` directly.
    """

    netns_pid: int
    host: str
    port: int


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

    def address(self, port: int) -> Address:
        """Where the run's ``port`` (one of RunSpec.ports) is reached from the server."""


class Runtime(Protocol):
    name: str

    def check(self) -> None:
        """Raise RuntimeUnavailable with a clear message when this machine cannot run work."""

    def start(self, spec: RunSpec) -> RunHandle: ...

    def sweep(self) -> int:
        """At start-up: remove what an earlier server of this data dir left running; the count."""

    def close(self) -> None:
        """At shutdown: stop and remove every run still going."""
