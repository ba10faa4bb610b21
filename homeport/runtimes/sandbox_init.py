"""PID 1 of a process sandbox: builds the filesystem view, runs the user's argv, forwards signals.

The process runtime starts this file as ``python -I -S sandbox_init.py CONTROL_FD PLAN_FILE``
inside fresh mount, PID, UTS and IPC (and maybe network and user) namespaces made by
``unshare``. It owns everything that happens inside the sandbox before and around the user's
process:

* setup: hostname, loopback up (private network), bind mounts (read-only ones remounted),
  a private ``/dev/shm``, a fresh ``/proc`` for the new PID namespace;
* running the user's argv (looked up on the sandbox PATH) with a clean environment;
* life as PID 1: SIGTERM goes to every process of the sandbox (the kernel drops signals sent to
  a PID-1 process that has no handler, so the user's main process must not be PID 1), other
  forwarded signals go to the main process, orphans are reaped;
* the control socket to the server: first ``pid <host pid>`` (sent once the signal handlers
  are in place, so a SIGTERM from the server is never dropped), last ``exit <code>`` (negative
  = killed by that signal). End-of-file on it means the server died: the sandbox ends at once.

When this process exits, the kernel SIGKILLs every other process of the PID namespace, so
"the main process exited" and "the server went away" both tear the whole tree down.

Concurrency: single-threaded. Signals are turned into bytes on a wakeup pipe by the
interpreter and handled in one ``select`` loop next to the control socket.

Start-up time matters (it is on the path of every CreateTrainingJob), so this module uses
only the standard library and only modules that are cheap to import: no ``json``, ``signal``
or ``socket`` (each pulls in ``enum`` or ``re``); ``marshal``, ``_signal`` and ``_socket``
instead. It must not import anything from ``homeport``.
"""

from __future__ import annotations

import _signal  # the C half of ``signal``: importing ``signal`` costs ~4 ms of ``enum``
import _socket
import ctypes
import fcntl
import marshal
import os
import select
import struct
import sys

# Not `from typing import ...`: importing typing costs more than the rest of this file's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_RELATIME = 0x200000

# statvfs flag → mount flag: in a user namespace a read-only remount must repeat the flags
# the kernel locked on the original mount, or it fails with EPERM.
_LOCKED_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

SIGTERM = _signal.SIGTERM
SIGCHLD = _signal.SIGCHLD
# Forwarded to the main process only; SIGTERM goes to the whole sandbox.
_TO_MAIN = (_signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)

EXIT_SETUP_FAILED = 125  # the same codes ``docker run`` uses
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_SERVER_GONE = 128 + 9  # nobody reads it: the kernel is about to SIGKILL the sandbox anyway


class SetupError(Exception):
    """The sandbox could not be built; the message goes to the run's output."""


class _Libc:
    """The two libc calls the standard library lacks."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(None, use_errno=True)
        self._lib.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
        result = self._lib.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            flags,
            data.encode() if data else None,
        )
        if result != 0:
            errno = ctypes.get_errno()
            what = f"bind {source}" if flags & MS_BIND and source else f"mount {fstype or 'remount'}"
            raise OSError(errno, f"{what} on {target}: {os.strerror(errno)}")


def _say(message: str) -> None:
    os.write(2, f"homeport-sandbox: {message}\n".encode(errors="replace"))


def _report(control: int, line: str) -> bool:
    try:
        os.write(control, (line + "\n").encode())
    except OSError:
        return False  # the server is gone; nobody is left to tell
    return True


# --------------------------------------------------------------------------- setup


def _loopback_up() -> None:
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    finally:
        sock.close()


def _create(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _shadow(libc: _Libc, folder: str) -> None:
    """Make ``folder`` writable inside the sandbox without touching the host.

    A tmpfs goes over it and every original entry is bind-mounted back, so new mountpoints
    can be created next to them. Used when the host folder cannot be written (an
    unprivileged user namespace, a read-only filesystem).
    """
    if folder == "/":
        raise SetupError("cannot create mountpoints directly under / without root")
    original = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mode = os.stat(folder).st_mode & 0o7777
        libc.mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o}")
        # /proc/self/fd/N names the folder *under* the tmpfs: the magic link keeps its mount.
        below = f"/proc/self/fd/{original}"
        for name in os.listdir(below):
            source, target = f"{below}/{name}", f"{folder}/{name}"
            if os.path.islink(source):
                os.symlink(os.readlink(source), target)
                continue
            _create(target, os.path.isdir(source))
            libc.mount(source, target, None, MS_BIND | MS_REC)
    finally:
        os.close(original)


def _mountpoint(libc: _Libc, target: str, is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    try:
        _create(target, is_dir)
        return
    except OSError:
        pass
    existing = os.path.dirname(target)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    _shadow(libc, existing)
    _create(target, is_dir)


def _remount_read_only(libc: _Libc, target: str) -> None:
    current = os.statvfs(target).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC
    for st_flag, ms_flag in _LOCKED_FLAGS:
        if current & st_flag:
            flags |= ms_flag
    libc.mount(None, target, None, flags)


def _mount_all(libc: _Libc, mounts: list[tuple[str, str, bool]]) -> None:
    # Hold every source before the first mount: mounting the private /tmp may hide sources
    # that live under the host's /tmp.
    sources: list[int] = []
    try:
        for source, _target, _ro in mounts:
            try:
                sources.append(os.open(source, os.O_PATH | os.O_CLOEXEC))
            except OSError as exc:
                raise SetupError(f"mount source {source}: {exc.strerror}") from exc
        for fd, (source, target, _ro) in zip(sources, mounts, strict=True):
            held = f"/proc/self/fd/{fd}"
            try:
                _mountpoint(libc, target, os.path.isdir(held))
                libc.mount(held, target, None, MS_BIND | MS_REC)
            except OSError as exc:
                raise SetupError(f"cannot mount {source} at {target}: {exc.strerror}") from exc
        # Read-only after all binds, so nested mountpoints could still be created.
        for _source, target, read_only in mounts:
            if read_only:
                _remount_read_only(libc, target)
    finally:
        for fd in sources:
            os.close(fd)


def setup(libc: _Libc, plan: dict[str, Any]) -> None:
    _socket.sethostname(plan["hostname"])
    if plan["private_network"]:
        _loopback_up()
    try:
        _mount_all(libc, plan["mounts"])
    except OSError as exc:
        raise SetupError(str(exc)) from exc
    if os.path.isdir("/dev/shm"):
        try:
            libc.mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        except OSError as exc:
            _say(f"warning: no private /dev/shm ({exc})")
    if plan["private_network"]:
        try:  # so /sys/class/net shows this namespace's interfaces, not the host's
            libc.mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError as exc:
            _say(f"warning: /sys still shows the host's network ({exc})")
    # Last: the host's /proc is what resolves /proc/self/fd/N above.
    try:
        libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        raise SetupError(str(exc)) from exc
    try:
        os.chdir(plan["cwd"])
    except OSError as exc:
        raise SetupError(f"working directory {plan['cwd']}: {exc.strerror}") from exc


def resolve(program: str, path: str) -> str | None:
    """Where ``execvp`` would find ``program`` on ``path`` (None: nowhere)."""
    if "/" in program:
        return program
    for folder in path.split(":"):
        candidate = os.path.join(folder or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


# --------------------------------------------------------------------------- PID 1


def _spawn(argv: list[str], env: dict[str, str], path: str) -> int:
    program = resolve(argv[0], path)
    if program is None:
        _say(f"executable file not found in $PATH: {argv[0]}")
        raise SystemExit(EXIT_NOT_FOUND)
    try:
        # Python ignores SIGPIPE and SIGXFSZ; ignored dispositions survive exec, so reset them.
        return os.posix_spawn(program, argv, env, setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ), setsigmask=())
    except FileNotFoundError:
        _say(f"cannot execute {program}: not found (a missing #! interpreter?)")
        raise SystemExit(EXIT_NOT_FOUND) from None
    except OSError as exc:
        _say(f"cannot execute {program}: {exc.strerror}")
        raise SystemExit(EXIT_CANNOT_EXECUTE) from None


def _kill(pid: int, signum: int) -> bool:
    """kill(2); False when there was nobody to signal."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def _supervise(control: int, wakeup: int, main_pid: int) -> int:
    """Wait for the main process while forwarding signals; return its exit code."""
    while True:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == main_pid:
                return os.waitstatus_to_exitcode(status)
        readable, _, _ = select.select([wakeup, control], [], [])
        if control in readable:
            try:
                data = os.read(control, 64)
            except OSError:
                data = b""
            if not data:
                # The server died. Exiting makes the kernel kill the rest of the sandbox.
                os._exit(EXIT_SERVER_GONE)
        if wakeup in readable:
            try:
                signals = os.read(wakeup, 256)
            except BlockingIOError:
                signals = b""
            for signum in signals:
                if signum == SIGTERM:
                    _kill(-1, SIGTERM)  # from PID 1: every process of this namespace but ourselves
                elif signum in _TO_MAIN:
                    _kill(main_pid, signum)


def _stopped_early(wakeup: int) -> bool:
    """Whether a SIGTERM arrived during setup (other early signals have no one to go to)."""
    try:
        return SIGTERM in os.read(wakeup, 256)
    except BlockingIOError:
        return False


def _ignore(signum: int, frame: object) -> None:
    """A Python-level handler only so the interpreter writes the signal to the wakeup pipe."""


def main(argv: list[str]) -> int:
    control = int(argv[1])
    os.set_inheritable(control, False)
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_read, False)
    os.set_blocking(wakeup_write, False)
    _signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)
    for signum in (SIGTERM, SIGCHLD, *_TO_MAIN):
        _signal.signal(signum, _ignore)
    # Our PID as the server sees it: /proc is still the host's here.
    _report(control, f"pid {os.readlink('/proc/self')}")

    with open(argv[2], "rb") as stream:
        plan: dict[str, Any] = marshal.load(stream)
    os.unlink(argv[2])  # it holds the environment, secrets included

    try:
        setup(_Libc(), plan)
        if _stopped_early(wakeup_read):
            # terminate() came before there was anything to terminate: do not start it.
            raise SystemExit(-SIGTERM)
        main_pid = _spawn(plan["argv"], plan["env"], plan["env"].get("PATH", ""))
    except (SetupError, OSError) as exc:
        _say(f"cannot build the sandbox: {exc}")
        code = EXIT_SETUP_FAILED
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = _supervise(control, wakeup_read, main_pid)
    _report(control, f"exit {code}")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    os._exit(main(sys.argv))
