"""The process runtime: an image's argv run as a process tree isolated with Linux namespaces.

No container engine: ``unshare`` (util-linux) makes new mount, PID, UTS and IPC namespaces,
plus a network namespace holding only loopback when ``spec.network == "none"``, and, when the
server is not root, a user namespace that maps the server's uid to root. Inside,
:mod:`homeport.runtimes.sandbox_init` runs as PID 1, builds the filesystem view from a plan
(:mod:`homeport.runtimes.sandbox_plan`) and runs the user's argv.

Launcher chain, with what keeps each link from outliving the server::

    server ──fork (spawner thread)──> setpriv --pdeathsig KILL   (dies with the server)
           unshare ... --fork --kill-child=SIGKILL                  (its child dies with it)
           python -I -S sandbox_init.py                             (PID 1: its exit kills the rest)
           the user's argv

and, independently of signals, a socketpair "lifeline": PID 1 holds one end, the server the
other; end-of-file (the server died, even by SIGKILL) makes PID 1 exit, which tears down the
sandbox. Either mechanism alone prevents orphans; together they also cover a server whose
socket leaked into a forked child, and a launcher forked just before the server died.

API notes:

* ``start()`` may be called from any thread: the launcher is forked by one long-lived
  spawner thread (see :mod:`homeport.runtimes.spawner`), because ``PR_SET_PDEATHSIG`` fires
  when the forking *thread* exits.
* ``wait()`` returns the main process's exit code; **negative N = killed by signal N**
  (``subprocess`` convention). 125/126/127 mean the sandbox could not be built / the program
  could not be executed / was not found (``docker run``'s codes), with a line in the output.
* ``handle.pid`` is the launcher (``unshare``) process. It lives in the sandbox's mount, UTS,
  IPC and network namespaces, so ``/proc/<pid>/ns/net`` is the run's network namespace.
* Each run gets a fresh folder under ``spec.scratch`` (private /tmp, hosts file, plan); it is
  removed once the run is over.
* ``handle.output`` is a pipe: the caller must keep reading it, or a chatty run blocks.
* The user's environment is only PATH, HOME (/root; /tmp in a user namespace), HOSTNAME,
  LANG=C.UTF-8 and PYTHONUNBUFFERED=1 (live logs), then image.env, then spec.env.
* Missing mountpoints: as root they are created (empty) on the host; in a user namespace the
  nearest existing parent is shadowed by a tmpfs with its entries bound back, so the host
  is never written.
* Without ``setpriv`` on the system the lifeline alone guards against orphans.

Concurrency: a ProcessRun may be waited on, terminated and killed from different threads;
its control-socket state is guarded by one lock, and ``wait`` blocks without holding it.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import IO

from homeport.errors import InternalFailure, RuntimeUnavailable
from homeport.images.model import LocalImage
from homeport.runtimes.base import Address, RunSpec
from homeport.runtimes.sandbox_plan import build_plan, hosts_file, local_image, private_code_dir, validate
from homeport.runtimes.spawner import Spawner

INIT_SCRIPT = Path(__file__).with_name("sandbox_init.py")
# Tools are looked up here, never on the server's PATH.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# How long a signal waits for PID 1 to announce itself (it takes ~15 ms when healthy).
ANNOUNCE_TIMEOUT = 5.0
# How long the final status may lag behind the launcher's exit.
STATUS_TIMEOUT = 5.0
TEARDOWN_TIMEOUT = 30.0


def userns_sysctl_problem(proc_sys: Path) -> str | None:
    """Why this kernel refuses unprivileged user namespaces, read from ``/proc/sys``; None = no reason."""
    for setting, refused in (("kernel/unprivileged_userns_clone", "0"), ("user/max_user_namespaces", "0")):
        try:
            value = (proc_sys / setting).read_text().strip()
        except OSError:
            continue  # not every kernel has every knob
        if value == refused:
            return f"{setting.replace('/', '.')} = {value}"
    return None


def namespace_flags(private_network: bool, user_namespace: bool) -> list[str]:
    flags = ["--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child=SIGKILL"]
    if private_network:
        flags.append("--net")
    if user_namespace:
        flags += ["--user", "--map-root-user"]
    return flags


class ProcessRuntime:
    """Runs images as namespaced process trees on this machine (root, or user namespaces)."""

    name = "process"

    def __init__(self, parent_death_signal: bool = True) -> None:
        # parent_death_signal=False leaves only the lifeline socket; the tests use it to prove
        # that the socket alone prevents orphans.
        self._parent_death_signal = parent_death_signal
        self._spawner = Spawner()
        self._runs: weakref.WeakSet[ProcessRun] = weakref.WeakSet()
        self._runs_lock = threading.Lock()

    def sweep(self) -> int:
        """Nothing can be left over: every sandbox dies with the server that started it."""
        return 0

    def close(self) -> None:
        with self._runs_lock:
            runs = list(self._runs)
        for run in runs:
            run.kill()

    def check(self) -> None:
        unshare = self._tool("unshare")
        self._interpreter()
        user_namespace = os.geteuid() != 0
        who = "root" if not user_namespace else f"uid {os.geteuid()} (through a user namespace)"
        hint = (
            ""
            if not user_namespace
            else " Run Homeport as root, or allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0; on Ubuntu "
            "also kernel.apparmor_restrict_unprivileged_userns=0)."
        )
        if user_namespace:
            problem = userns_sysctl_problem(Path("/proc/sys"))
            if problem is not None:
                raise RuntimeUnavailable(
                    f"the process runtime cannot create Linux namespaces as {who}: {problem}.{hint}"
                )
        probe = [unshare, *namespace_flags(True, user_namespace), "--mount-proc", self._tool("true")]
        try:
            result = subprocess.run(
                probe, stdin=subprocess.DEVNULL, capture_output=True, env={}, cwd="/", timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeUnavailable(f"the process runtime's namespace probe failed: {exc}") from exc
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip() or f"exit code {result.returncode}"
            raise RuntimeUnavailable(
                f"the process runtime cannot create Linux namespaces as {who}: "
                f"`{' '.join(probe)}` failed: {said}.{hint}"
            )
        self._self_test()

    def _self_test(self) -> None:
        """One real sandbox (mounts, /proc, hostname, private network): the interpreter and the
        init script must also be usable by this user, which the bare probe cannot tell."""
        with tempfile.TemporaryDirectory(prefix="homeport-check-") as folder:
            image = LocalImage(name="homeport-check", tag="latest", root=Path(folder), at="/opt/program")
            spec = RunSpec(
                name="check",
                image=image,
                argv=[self._tool("true")],
                env={},
                mounts=[],
                network="none",
                scratch=Path(folder),
            )
            run = self.start(spec)
            output = run.output.read().decode(errors="replace").strip()
            run.output.close()
            code = run.wait(30)
            if code is None:
                run.kill()
            if code != 0:
                raise RuntimeUnavailable(
                    f"the process runtime's test sandbox failed (exit code {code}): {output or 'no output'}"
                )

    def start(self, spec: RunSpec) -> ProcessRun:
        validate(spec)
        image = local_image(spec)
        if not image.root.is_dir():
            raise InternalFailure(f"image {image.reference}: its files are missing ({image.root})")
        for mount in spec.mounts:
            if not mount.source.exists():
                raise InternalFailure(f"run {spec.name}: mount source {mount.source} does not exist")
        user_namespace = os.geteuid() != 0
        spec.scratch.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="sandbox-", dir=spec.scratch))
        ours: socket.socket | None = None
        try:
            private_tmp = run_dir / "tmp"
            private_tmp.mkdir()
            private_tmp.chmod(0o1777)  # processes that drop to another user still need /tmp
            private_code_dir(private_tmp).mkdir()
            hosts = run_dir / "hosts"
            hosts.write_text(hosts_file(spec))
            hosts.chmod(0o644)
            plan_file = run_dir / "plan"
            plan = build_plan(spec, private_tmp, hosts, user_namespace)
            # 0600: the plan holds the job's environment, secrets included; PID 1 deletes it.
            with os.fdopen(os.open(plan_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                marshal.dump(plan, out)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                popen = self._launch(spec, theirs.fileno(), plan_file, user_namespace)
            except OSError as exc:
                raise RuntimeUnavailable(
                    f"run {spec.name}: cannot start the sandbox launcher: {exc}"
                ) from exc
            finally:
                theirs.close()
        except BaseException:
            if ours is not None:
                ours.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        run = ProcessRun(spec.name, popen, ours, run_dir)
        with self._runs_lock:
            self._runs.add(run)
        return run

    def _launch(
        self, spec: RunSpec, control_fd: int, plan_file: Path, user_namespace: bool
    ) -> subprocess.Popen[bytes]:
        argv = [
            self._tool("unshare"),
            *namespace_flags(spec.network == "none", user_namespace),
            "--",
            self._interpreter(),
            "-I",  # no PYTHON* variables, no user site
            "-S",  # no site import: PID 1 needs the standard library only, and fast
            str(INIT_SCRIPT),
            str(control_fd),
            str(plan_file),
        ]
        setpriv = shutil.which("setpriv", path=SYSTEM_PATH) if self._parent_death_signal else None
        if setpriv is not None:
            argv = [setpriv, "--pdeathsig", "KILL", *argv]

        def launch() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={},  # the sandbox's environment travels in the plan, not here
                cwd="/",
                pass_fds=(control_fd,),
                # Out of the server's process group: a Ctrl-C on the server's terminal is the
                # server's to handle (it stops runs itself), not the sandbox's.
                start_new_session=True,
            )

        return self._spawner.call(launch) if setpriv is not None else launch()

    def _tool(self, name: str) -> str:
        found = shutil.which(name, path=SYSTEM_PATH)
        if found is None:
            raise RuntimeUnavailable(
                f"the process runtime needs `{name}` (util-linux/coreutils) on {SYSTEM_PATH}"
            )
        return found

    @staticmethod
    def _interpreter() -> str:
        # Absolute: a PATH lookup could hit a pyenv shim (~190 ms per start).
        if not sys.executable or not os.path.isabs(sys.executable):
            raise RuntimeUnavailable("the process runtime needs the server's Python interpreter path")
        return sys.executable


class ProcessRun:
    """A running sandbox: the RunHandle of the process runtime."""

    def __init__(
        self, name: str, popen: subprocess.Popen[bytes], control: socket.socket, run_dir: Path
    ) -> None:
        self.name = name
        self._popen = popen
        self._control = control
        self._run_dir = run_dir
        self._lock = threading.Lock()
        self._received = b""
        self._control_closed = False
        self._announced = False
        self._pidfd: int | None = None  # PID 1 of the sandbox, race-free against PID reuse
        self._reported: int | None = None  # the exit code PID 1 reported
        self._exit_code: int | None = None
        self._killed = False
        self._done = False

    @property
    def pid(self) -> int:
        return self._popen.pid

    def address(self, port: int) -> Address:
        # The launcher lives in the sandbox's network namespace (shared with the host's when
        # the run has network="host").
        return Address(self._popen.pid, "127.0.0.1", port)

    @property
    def output(self) -> IO[bytes]:
        if self._popen.stdout is None:
            raise InternalFailure("the run's output pipe is missing")
        return self._popen.stdout

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        with self._lock:
            self._finish()
            return self._exit_code

    def terminate(self) -> None:
        with self._lock:
            if self._done:
                return
            self._read_control(lambda: self._announced, ANNOUNCE_TIMEOUT)
            if self._pidfd is not None:
                self._send(signal.SIGTERM)
            elif self._popen.poll() is None:
                # PID 1 never came up; the launcher blocks SIGTERM, so this is the only way.
                self._popen.kill()

    def kill(self) -> None:
        with self._lock:
            if not self._done:
                self._killed = True
                self._read_control(lambda: self._announced, ANNOUNCE_TIMEOUT)
                if self._pidfd is not None:
                    self._send(signal.SIGKILL)
                elif self._popen.poll() is None:
                    self._popen.kill()  # --kill-child passes the SIGKILL on to PID 1
        # The launcher reaps PID 1 only after the kernel has emptied the PID namespace.
        self._popen.wait()
        with self._lock:
            if self._pidfd is not None:
                # Covers a launcher killed from outside: PID 1's pidfd turns readable once
                # it (and so the whole namespace) is gone.
                select.select([self._pidfd], [], [], TEARDOWN_TIMEOUT)
            self._finish()

    # ------------------------------------------------------------------ control socket

    def _read_control(self, enough: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not enough() and not self._control_closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._control], [], [], remaining)[0]:
                return
            try:
                data = self._control.recv(4096)
            except OSError:
                data = b""
            if not data:
                self._control_closed = True
                return
            self._received += data
            while b"\n" in self._received:
                line, _, self._received = self._received.partition(b"\n")
                self._on_line(line.decode(errors="replace"))

    def _on_line(self, line: str) -> None:
        word, _, value = line.partition(" ")
        if word == "pid":
            self._announced = True
            self._adopt_init(int(value))
        elif word == "exit":
            self._reported = int(value)

    def _adopt_init(self, pid: int) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return  # already gone
        # Only a child of our launcher is ours: anything else is a recycled PID.
        if _parent_of(pid) != self._popen.pid:
            os.close(pidfd)
            return
        self._pidfd = pidfd

    def _send(self, signum: int) -> None:
        if self._pidfd is None:
            return
        with contextlib.suppress(ProcessLookupError):  # PID 1 has just exited
            signal.pidfd_send_signal(self._pidfd, signum)

    def _finish(self) -> None:
        """Once the launcher has exited: settle the exit code and release everything but output."""
        if self._done:
            return
        self._read_control(lambda: self._reported is not None, STATUS_TIMEOUT)
        if self._reported is not None:
            self._exit_code = self._reported
        elif self._killed:
            self._exit_code = -signal.SIGKILL
        else:
            # PID 1 died without a word (killed from outside?): unshare then says 1, or
            # its own code when it could not build the namespaces (its message is in the output).
            self._exit_code = self._popen.returncode
        self._done = True
        self._control.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        shutil.rmtree(self._run_dir, ignore_errors=True)


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    return int(stat.rpartition(")")[2].split()[1])
