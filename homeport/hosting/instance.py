"""One serving instance: an image's ``serve`` running in its own sandbox, as on a SageMaker host.

What the container sees follows the SageMaker hosting contract (sagemaker-reference §3.4):

* argv ``serve`` (looked up on the image's PATH), the environment given (the container
  definition's ``Environment``, prepared by the caller) over the image's own;
* the model data read-only at ``/opt/ml/model``; without model data an empty read-only folder,
  so the path exists as it does on SageMaker;
* a private network namespace holding only loopback (``network="none"``): every instance binds
  ``0.0.0.0:8080`` without clashing, and is reached from the host by entering its namespace
  (:func:`homeport.hosting.netns.connect_in_netns` on :attr:`ServingInstance.address`), or,
  with the docker runtime's ``ports`` mode, through 8080 published on 127.0.0.1;
* CPU, memory and GPU limits from the instance type (the docker runtime enforces them);
* hostname: the ContainerHostname when the caller passes one, else ``"model"``. SageMaker
  ignores ContainerHostname for single-container models and documents no fixed hostname, so
  any valid name is faithful; ``model`` says what the host is for, unlike ``algo-1`` (training);
* health: ``GET /ping`` answering 200 within 2 s; shutdown: SIGTERM to every process of the
  sandbox, SIGKILL 30 s later (SageMaker's grace period, the default of :meth:`stop`).

The image is held (:func:`homeport.images.registry.hold`) from :meth:`start` to :meth:`stop`, so
replacing it in the registry cannot delete the files of a running instance.

Output (stdout and stderr merged) is read line by line by one daemon thread per instance and
written to the LogWriter; the last lines are also kept in memory for failure reasons. The
writer belongs to that thread while the instance runs; :meth:`stop` returns only after the
thread has finished, after which the caller may close the writer.

Concurrency: an instance is driven from controller threads and its calls block (starting,
pinging, waiting, stopping). :meth:`ping`, :meth:`alive`, :meth:`exit_code` and
:meth:`last_lines` may be called from any thread at any time. :meth:`start` is called once.
:meth:`stop` is idempotent and may run while another thread is in :meth:`wait_ready`, which
then raises :class:`StartCancelled` promptly; concurrent stops serialise on a lock and all
return once nothing of the instance is left running.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import signal
import socket
import threading
import time
from pathlib import Path

from homeport.errors import HomeportError
from homeport.hosting.netns import connect_in_netns
from homeport.images.model import Image
from homeport.images.source import hold
from homeport.logs.streams import LogWriter
from homeport.runtimes.base import Address, Mount, Resources, RunHandle, RunSpec, Runtime

__all__ = [
    "CODE_DIR",
    "DEFAULT_HOSTNAME",
    "InstanceFailed",
    "MODEL_DIR",
    "PING_TIMEOUT",
    "SERVING_PORT",
    "STOP_GRACE",
    "ServingInstance",
    "StartCancelled",
]

SERVING_PORT = 8080
MODEL_DIR = "/opt/ml/model"
CODE_DIR = "/opt/ml/code"  # where toolkits keep the inference code (sagemaker_submit_directory)
DEFAULT_HOSTNAME = "model"
PING_TIMEOUT = 2.0  # SageMaker's /ping request timeout
STOP_GRACE = 30.0  # SageMaker: SIGTERM, then SIGKILL 30 s later
TAIL_LINES = 20  # log lines quoted in a failure reason
_KEPT_LINES = 200
_MAX_LINE = 64 * 1024  # a longer line is split: one log event must stay a sane size
# Polling /ping: every 10 ms during the first second (a refused connection costs well under a
# millisecond, and a small server is up in ~70 ms), then from 50 ms backing off.
_POLL_EAGER = 0.01
_POLL_EAGER_FOR = 1.0
_POLL_FIRST = 0.05
_POLL_MAX = 0.5
_POLL_GROWTH = 1.5
# How long the output may lag behind the process's exit (the sandbox is torn down by then).
_DRAIN_TIMEOUT = 5.0


class InstanceFailed(Exception):
    """The instance did not become healthy; ``reason`` is fit for an endpoint's FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StartCancelled(InstanceFailed):
    """:meth:`ServingInstance.wait_ready` gave up because the instance is being stopped."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"


class ServingInstance:
    def __init__(
        self,
        key: str,
        runtime: Runtime,
        image: Image,
        model_dir: Path | None,
        env: dict[str, str],
        log: LogWriter,
        scratch: Path,
        *,
        hostname: str | None = None,
        code_dir: Path | None = None,
        variant: str = "AllTraffic",
        resources: Resources | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        self.key = key  # unique among live instances, e.g. "<endpoint>/<variant>/<n>-<generation>"
        self.runtime = runtime
        self.image = image
        self.model_dir = model_dir
        self.code_dir = code_dir  # mounted writable at /opt/ml/code when given (staged inference code)
        self.env = dict(env)
        self.hostname = hostname or DEFAULT_HOSTNAME
        self.variant = variant  # named in failure reasons, as SageMaker does
        self.resources = resources
        self.labels = dict(labels or {})
        self._log = log
        self.scratch = Path(scratch)  # the caller owns (and removes) it; each run gets a folder in it
        self._handle: RunHandle | None = None
        self._holding = contextlib.ExitStack()
        self._lines: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)
        self._lines_lock = threading.Lock()
        self._drain: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------------

    def spec(self) -> RunSpec:
        """What :meth:`start` runs (public so a controller or a test can see the contract)."""
        model = self.model_dir
        if model is None:
            # Shared by every model-less instance with this scratch: it is mounted read-only.
            model = self.scratch / "empty-model"
            model.mkdir(parents=True, exist_ok=True)
        return RunSpec(
            name=f"endpoint-instance/{self.key}",
            image=self.image,
            argv=["serve"],
            env=self.env,
            mounts=[
                Mount(model, MODEL_DIR, read_only=True),
                *([Mount(self.code_dir, CODE_DIR, read_only=False)] if self.code_dir is not None else []),
            ],
            hostname=self.hostname,
            network="none",
            scratch=self.scratch,
            resources=self.resources,
            labels=self.labels,
            ports=(SERVING_PORT,),
        )

    def start(self) -> None:
        """Start the container and its log reader; InstanceFailed when it cannot be started."""
        with self._start_lock:
            if self._handle is not None or self._stopping.is_set():
                raise RuntimeError(f"instance {self.key} was already started or stopped")
            try:
                self._holding.enter_context(hold(self.image))
                self._handle = self.runtime.start(self.spec())
            except (HomeportError, OSError) as exc:
                self._holding.close()
                detail = exc.message if isinstance(exc, HomeportError) else str(exc)
                raise InstanceFailed(
                    f"The primary container for production variant {self.variant} could not be started: "
                    f"{detail}"
                ) from exc
            self._drain = threading.Thread(
                target=self._pump, args=(self._handle,), name=f"instance-log:{self.key}", daemon=True
            )
            self._drain.start()

    @property
    def address(self) -> Address:
        """Where the instance's port 8080 is reached (inside its network namespace, or published)."""
        if self._handle is None:
            raise RuntimeError(f"instance {self.key} has not been started")
        return self._handle.address(SERVING_PORT)

    def connect(self, timeout: float) -> socket.socket:
        """A new TCP connection to the instance's port 8080 (OSError when it cannot be reached)."""
        where = self.address
        return connect_in_netns(where.netns_pid, where.port, timeout, where.host)

    @property
    def netns_pid(self) -> int:
        """A pid whose ``/proc/<pid>/ns/net`` is the instance's network namespace (0: none)."""
        return self.address.netns_pid

    def exit_code(self) -> int | None:
        """The container's exit code once it has exited (negative: killed by that signal), else None."""
        handle = self._handle
        return None if handle is None else handle.wait(0)

    def alive(self) -> bool:
        return self._handle is not None and self.exit_code() is None

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to the whole container, SIGKILL after ``grace`` seconds; returns when nothing is left.

        Idempotent, and safe to call on an instance that never started or already exited.
        """
        self._stopping.set()
        # The start lock too: a start in progress on another thread finishes first, then is undone.
        with self._start_lock, self._stop_lock:
            if self._stopped:
                return
            handle = self._handle
            try:
                if handle is not None:
                    if handle.wait(0) is None:
                        handle.terminate()
                        handle.wait(max(0.0, grace))
                    # Even after a clean exit: kill() is what guarantees the sandbox is gone.
                    handle.kill()
                    if self._drain is not None:
                        self._drain.join(_DRAIN_TIMEOUT)
                    with contextlib.suppress(OSError):
                        handle.output.close()
            finally:
                self._holding.close()
                self._stopped = True

    # -- health --------------------------------------------------------------------------------

    def ping(self, timeout: float = PING_TIMEOUT) -> bool:
        """``GET /ping`` on port 8080 inside the instance over a fresh connection: 200 = healthy."""
        handle = self._handle
        # Only while it runs: once reaped, its pid could be another process's (and namespace).
        if handle is None or handle.wait(0) is not None:
            return False
        try:
            where = handle.address(SERVING_PORT)
            sock = connect_in_netns(where.netns_pid, where.port, timeout, where.host)
        except OSError:  # refused (not listening yet), timed out, namespace gone
            return False
        conn = http.client.HTTPConnection("127.0.0.1", SERVING_PORT, timeout=timeout)
        conn.sock = sock  # already connected, inside the instance's namespace
        try:
            conn.request("GET", "/ping")
            response = conn.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Poll /ping until it answers 200; InstanceFailed if the container exits or ``timeout`` passes.

        StartCancelled (an InstanceFailed) when ``stop`` is set or :meth:`stop` is called meanwhile.
        """
        if self._handle is None:
            raise RuntimeError(f"instance {self.key} has not been started")
        started = time.monotonic()
        deadline = started + timeout
        delay = _POLL_FIRST
        while True:
            if self._cancelled(stop):
                raise StartCancelled(
                    f"The instance for production variant {self.variant} was stopped while starting."
                )
            code = self.exit_code()
            if code is not None:
                raise InstanceFailed(
                    self._reason(
                        f": the container exited with {describe_exit(code)} before answering it", drain=True
                    )
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InstanceFailed(self._reason(f" within {timeout:g} seconds", drain=False))
            if self.ping(min(PING_TIMEOUT, remaining)):
                return
            if time.monotonic() - started < _POLL_EAGER_FOR:
                pause = _POLL_EAGER
            else:
                pause = min(delay, max(0.0, deadline - time.monotonic()))
                delay = min(delay * _POLL_GROWTH, _POLL_MAX)
            if stop is not None:
                stop.wait(pause)
            else:
                self._stopping.wait(pause)

    def _cancelled(self, stop: threading.Event | None) -> bool:
        return self._stopping.is_set() or (stop is not None and stop.is_set())

    def _reason(self, what: str, drain: bool) -> str:
        """SageMaker's sentence ("... did not pass the ping health check.") with ``what`` inserted
        before its full stop, then our log tail (SageMaker points at CloudWatch instead)."""
        if drain and self._drain is not None:
            # The last lines are the interesting ones: let the reader catch up with the exit.
            self._drain.join(_DRAIN_TIMEOUT)
        tail = self.last_lines(TAIL_LINES)
        text = (
            f"The primary container for production variant {self.variant} did not pass the ping health "
            f"check{what}. Please check CloudWatch logs for this endpoint."
        )
        if tail:
            text += " Last log lines:\n" + "\n".join(tail)
        else:
            text += " It wrote no output."
        return text

    # -- output --------------------------------------------------------------------------------

    def last_lines(self, n: int = TAIL_LINES) -> list[str]:
        """The last ``n`` output lines (at most the last 200 are kept)."""
        with self._lines_lock:
            return list(self._lines)[-n:] if n > 0 else []

    def _pump(self, handle: RunHandle) -> None:
        output = handle.output
        try:
            while True:
                raw = output.readline(_MAX_LINE)
                if not raw:
                    return
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                with self._lines_lock:
                    self._lines.append(line)
                # A failing log file must not stop the draining: a full pipe would block serve.
                with contextlib.suppress(OSError, ValueError):
                    self._log.write(line)
        except (OSError, ValueError):
            return  # the pipe was closed under us by stop()
