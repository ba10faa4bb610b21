"""The docker runtime: images run as containers by a Docker-compatible engine.

Works with Docker Engine and with Podman's Docker-compatible service, through the ``docker``
SDK against ``DOCKER_HOST`` (``docker.from_env``). ``docker run IMAGE train`` semantics:

* the image's entrypoint, with RunSpec.argv as the command (``train``, ``serve`` or
  ContainerArguments); ContainerEntrypoint replaces the entrypoint;
* bind mounts exactly as RunSpec.mounts lists them (the ``/opt/ml`` subfolders), nothing else;
* the environment is the image's plus RunSpec.env (nothing of the server's);
* hostname RunSpec.hostname, which resolves to 127.0.0.1, plus RunSpec.hosts;
* ``network="none"``: no network at all (EnableNetworkIsolation); ``"host"``: the host's;
* RunSpec.resources: CPU and memory limits, and NVIDIA GPUs as device requests;
* containers are created from the image ID, so nothing is ever pulled.

Serving ports (RunSpec.ports) are reached in one of two ways:

* ``netns`` (default when the server runs as root next to the engine): the container has no
  network; the server opens sockets inside its network namespace (``/proc/<pid>/ns/net``),
  so any number of containers bind 8080 with nothing published;
* ``ports``: the container joins the engine's default bridge network with each port
  published on 127.0.0.1 at a port the engine picks (for a non-root server or a remote engine).

Every container is labelled with the server's scope (its host and data dir), the run's name
and the job or endpoint it belongs to. :meth:`ContainerRuntime.sweep` removes what an earlier
server of the same data dir left behind; :meth:`ContainerRuntime.close` what this one leaves.

Concurrency: one thread per run waits on the container and then removes it; another copies its
output (attached before the start) into a pipe (:attr:`ContainerRun.output`). Exit codes are the
engine's; a container this runtime killed reports ``-9`` like the process runtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import DeviceRequest
from docker.types import Mount as DockerMount

from homeport.errors import InternalFailure, RuntimeUnavailable
from homeport.images.model import EngineImage
from homeport.runtimes.base import Address, RunSpec

log = logging.getLogger(__name__)

LABEL_SCOPE = "io.homeport.scope"
LABEL_RUN = "io.homeport.run"
LABEL_PREFIX = "io.homeport."
NETWORK_MODES = ("auto", "netns", "ports")
# How long the output may lag behind the container's exit before the pipe is closed anyway.
_DRAIN_TIMEOUT = 10.0
# How long kill() waits for the engine to report the container gone.
_TEARDOWN_TIMEOUT = 60.0
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


def scope_for(data_dir: Path, host: str) -> str:
    """A short stable label value naming one server's data dir on one host."""
    return hashlib.sha256(f"{host}:{Path(data_dir).resolve()}".encode()).hexdigest()[:16]


def container_name(scope: str, run_name: str) -> str:
    return f"homeport-{scope[:8]}-" + _NAME_UNSAFE.sub(".", run_name).strip(".")[:200]


def _engine_message(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


class ContainerRuntime:
    """Runs images as containers through a Docker-compatible engine."""

    name = "docker"

    def __init__(
        self,
        scope: str,
        network_mode: str = "auto",
        gpus: str = "auto",
        base_url: str | None = None,
    ) -> None:
        if network_mode not in NETWORK_MODES:
            raise ValueError(
                f"unknown container network mode {network_mode!r}; choose one of {NETWORK_MODES}"
            )
        self.scope = scope
        self._requested_network = network_mode
        self._gpus = gpus
        self._base_url = base_url  # None: DOCKER_HOST, else the engine's default socket
        self._client: docker.DockerClient | None = None
        self._streams: docker.DockerClient | None = None
        self._runs: weakref.WeakSet[ContainerRun] = weakref.WeakSet()
        self._runs_lock = threading.Lock()

    # -- the engine ----------------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> docker.DockerClient:
        try:
            if self._base_url is not None:
                return docker.DockerClient(base_url=self._base_url, timeout=timeout)
            return docker.from_env(timeout=timeout)
        except docker.errors.DockerException as exc:
            raise RuntimeUnavailable(self._unreachable(exc)) from exc

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self._connect(60)
        return self._client

    @property
    def streams(self) -> docker.DockerClient:
        """A second client without a read timeout, for the long-lived wait and attach calls."""
        if self._streams is None:
            self._streams = self._connect(None)
        return self._streams

    @property
    def network_mode(self) -> str:
        if self._requested_network != "auto":
            return self._requested_network
        local = self.client.api.base_url.startswith(
            ("http+docker://localhost", "http+docker://localunixsocket")
        )
        return "netns" if os.geteuid() == 0 and local else "ports"

    @staticmethod
    def _unreachable(exc: Exception) -> str:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock (the default)")
        return (
            f"the docker runtime cannot reach a container engine at DOCKER_HOST={host}: {exc}. Start "
            "Docker Engine, or Podman's Docker-compatible service (podman system service --time=0 "
            "unix:///PATH/podman.sock) and set DOCKER_HOST=unix:///PATH/podman.sock"
        )

    def check(self) -> None:
        try:
            self.client.ping()
            version = self.client.version()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise RuntimeUnavailable(self._unreachable(exc)) from exc
        if self.network_mode == "netns" and os.geteuid() != 0:
            raise RuntimeUnavailable(
                "the docker runtime's netns network mode needs a root server (it enters containers' "
                "network namespaces); use --container-network ports"
            )
        log.info(
            "docker runtime: %s %s, network mode %s",
            version.get("Platform", {}).get("Name", "engine"),
            version.get("Version", "?"),
            self.network_mode,
        )

    def labelled(self) -> list[dict[str, Any]]:
        """This scope's containers as the engine lists them (Id, Names, Labels, State), any state."""
        found: list[dict[str, Any]] = self.client.api.containers(
            all=True, filters={"label": f"{LABEL_SCOPE}={self.scope}"}
        )
        return found

    def sweep(self) -> int:
        """Remove every container an earlier server of this data dir left (running or not)."""
        found = self.labelled()
        for entry in found:
            log.warning(
                "removing leftover container %s (%s)",
                (entry.get("Names") or ["?"])[0],
                (entry.get("Labels") or {}).get(LABEL_RUN),
            )
            try:
                self.client.api.remove_container(entry["Id"], force=True)
            except docker.errors.APIError as exc:
                if "no such container" not in str(exc).lower() and exc.status_code != 404:
                    raise
        return len(found)

    def close(self) -> None:
        with self._runs_lock:
            runs = list(self._runs)
        for run in runs:
            run.kill()

    # -- running -------------------------------------------------------------------------------

    def start(self, spec: RunSpec) -> ContainerRun:
        image = spec.image
        if not isinstance(image, EngineImage):
            raise InternalFailure(f"run {spec.name}: the docker runtime runs engine images, not {image!r}")
        for mount in spec.mounts:
            if not mount.source.exists():
                raise InternalFailure(f"run {spec.name}: mount source {mount.source} does not exist")
        options = self.create_options(spec)
        name = str(options["name"])
        try:
            container = self._create(name, image, options)
        except docker.errors.APIError as exc:
            raise InternalFailure(
                f"ClientError: the container engine could not create the container for image "
                f"{image.reference}: {_engine_message(exc)}"
            ) from exc
        output: Iterator[bytes] | None = None
        try:
            # Attached before the start, so nothing is missed; the stream ends as the container
            # exits (following the logs instead lags ~0.5 s behind the exit on Podman).
            output = self.streams.api.attach(container.id, stdout=True, stderr=True, stream=True, logs=True)
            container.start()
            container.reload()
        except docker.errors.APIError as exc:
            if output is not None:
                with contextlib.suppress(Exception):
                    output.close()  # type: ignore[attr-defined]
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
            raise InternalFailure(
                f"ClientError: the container for image {image.reference} could not be started: "
                f"{_engine_message(exc)}"
            ) from exc
        run = ContainerRun(spec.name, container, output, self.streams, self.network_mode, spec.ports)
        with self._runs_lock:
            self._runs.add(run)
        return run

    def _create(self, name: str, image: EngineImage, options: dict[str, Any]) -> Container:
        try:
            return self.client.containers.create(image.id, **options)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        # The name is taken: a leftover of this scope (sweep missed it, or a run is restarted).
        old = self.client.containers.get(name)
        if old.labels.get(LABEL_SCOPE) != self.scope:
            raise InternalFailure(f"a container named {name} exists and is not Homeport's")
        old.remove(force=True)
        return self.client.containers.create(image.id, **options)

    def create_options(self, spec: RunSpec) -> dict[str, Any]:
        """The engine's create options for a run (public so tests can check the contract)."""
        hosts = {spec.hostname: "127.0.0.1", **spec.hosts}
        options: dict[str, Any] = {
            "name": container_name(self.scope, spec.name),
            "command": list(spec.argv),
            "environment": dict(spec.env),
            "hostname": spec.hostname,
            "extra_hosts": hosts,
            "mounts": [
                DockerMount(target=m.target, source=str(m.source), type="bind", read_only=m.read_only)
                for m in spec.mounts
            ],
            "labels": {
                LABEL_SCOPE: self.scope,
                LABEL_RUN: spec.name,
                **{LABEL_PREFIX + k: v for k, v in spec.labels.items()},
            },
            "detach": True,
        }
        if spec.entrypoint:
            options["entrypoint"] = list(spec.entrypoint)
        if spec.ports and self.network_mode == "ports":
            options["ports"] = {f"{port}/tcp": ("127.0.0.1", None) for port in spec.ports}
        else:
            options["network_mode"] = "none" if spec.network == "none" or spec.ports else "host"
        if spec.resources is not None:
            options["nano_cpus"] = int(spec.resources.cpus * 1e9)
            options["mem_limit"] = spec.resources.memory_bytes
            if spec.resources.gpus and self._gpus_wanted():
                options["device_requests"] = [
                    DeviceRequest(count=spec.resources.gpus, capabilities=[["gpu"]])
                ]
        return options

    def _gpus_wanted(self) -> bool:
        if self._gpus == "auto":
            return Path("/dev/nvidiactl").exists()
        return self._gpus == "on"


class ContainerRun:
    """One container: the RunHandle of the docker runtime."""

    def __init__(
        self,
        name: str,
        container: Container,
        output: Iterator[bytes],
        streams: docker.DockerClient,
        network_mode: str,
        ports: tuple[int, ...],
    ) -> None:
        self.name = name
        self._container = container
        self._id = str(container.id)
        self._streams = streams
        self._attached = output
        self._network_mode = network_mode
        state = container.attrs.get("State", {})
        self._pid = int(state.get("Pid") or 0)
        self._published = self._published_ports(container, ports) if network_mode == "ports" else {}
        self._exit_code: int | None = None
        self._killed = False
        self._exited = threading.Event()
        self._removed = threading.Event()
        read_fd, write_fd = os.pipe()
        self._output: IO[bytes] = os.fdopen(read_fd, "rb")
        self._pump = threading.Thread(
            target=self._copy_output, args=(write_fd,), daemon=True, name=f"container-log:{name}"
        )
        self._pump.start()
        self._waiter = threading.Thread(
            target=self._wait_and_remove, daemon=True, name=f"container-wait:{name}"
        )
        self._waiter.start()

    @staticmethod
    def _published_ports(container: Container, ports: tuple[int, ...]) -> dict[int, int]:
        bound = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
        out: dict[int, int] = {}
        for port in ports:
            entries = bound.get(f"{port}/tcp") or []
            for entry in entries:
                if entry.get("HostPort"):
                    out[port] = int(entry["HostPort"])
                    break
        return out

    # -- RunHandle -----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def output(self) -> IO[bytes]:
        return self._output

    def address(self, port: int) -> Address:
        if self._network_mode == "ports":
            published = self._published.get(port)
            if published is None:
                raise InternalFailure(f"run {self.name}: port {port} was not published")
            return Address(0, "127.0.0.1", published)
        return Address(self._pid, "127.0.0.1", port)

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._exited.wait(timeout):
            return None
        return self._exit_code

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        if not self._exited.is_set():
            self._killed = True
            self._signal(signal.SIGKILL)
        if not self._removed.wait(_TEARDOWN_TIMEOUT):
            log.warning("container %s was not removed within %ss", self.name, _TEARDOWN_TIMEOUT)

    # -- internals -----------------------------------------------------------------------------

    def _signal(self, signum: int) -> None:
        if self._exited.is_set():
            return
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
            self._container.kill(signal=signal.Signals(signum).name)

    def _copy_output(self, write_fd: int) -> None:
        try:
            for chunk in self._attached:
                os.write(write_fd, chunk)
        except (docker.errors.APIError, requests.exceptions.RequestException, OSError) as exc:
            log.debug("output of container %s ended: %s", self.name, exc)
        finally:
            os.close(write_fd)

    def _wait_and_remove(self) -> None:
        code: int | None = None
        while code is None:
            try:
                result = self._streams.api.wait(self._id)
                code = int(result.get("StatusCode", -1))
            except docker.errors.NotFound:
                code = -signal.SIGKILL if self._killed else -1
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                log.warning("waiting on container %s failed (%s); retrying", self.name, exc)
                self._exited.wait(1.0)
        if self._killed and code in (128 + signal.SIGKILL, 128 + signal.SIGTERM):
            code = -(code - 128)
        self._exit_code = code
        self._exited.set()
        self._pump.join(_DRAIN_TIMEOUT)  # the log stream ends with the container; let it finish
        try:
            self._container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.warning("removing container %s failed: %s", self.name, exc)
        self._removed.set()
