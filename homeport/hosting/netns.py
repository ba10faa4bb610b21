"""Reaching a server inside another network namespace from the host.

Every serving instance binds 0.0.0.0:8080 in its own network namespace, as on SageMaker.
A socket keeps the namespace it was created in, so the calling thread briefly enters the
instance's namespace with ``setns(2)``, creates and connects the socket, and goes back
(see ../shared/docs/machine-notes.md). Python 3.11 has no ``os.setns``: libc's is called
through ctypes. Only the calling thread switches; callers on an event loop run
:func:`connect_in_netns` in a worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import socket

CLONE_NEWNET = 0x40000000


class NetnsError(OSError):
    """The namespace could not be entered or left."""


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, f"setns failed: {os.strerror(err)}")


@functools.cache
def _host_netns_path() -> str:
    # The namespace this process started in; threads return here after each switch.
    return f"/proc/{os.getpid()}/ns/net"


def connect_in_netns(
    netns_pid: int, port: int, timeout: float = 2.0, host: str = "127.0.0.1"
) -> socket.socket:
    """A TCP socket connected to ``host:port`` inside the network namespace of ``netns_pid``.

    ``netns_pid`` 0 connects from the caller's own namespace (a port published on the host).
    """
    if netns_pid == 0:
        direct = socket.create_connection((host, port), timeout)
        direct.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return direct
    own = os.open(_host_netns_path(), os.O_RDONLY)
    try:
        target = os.open(f"/proc/{netns_pid}/ns/net", os.O_RDONLY)
    except OSError as exc:
        os.close(own)
        raise NetnsError(exc.errno or 0, f"instance namespace of pid {netns_pid} is gone") from exc
    sock: socket.socket | None = None
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            sock.connect((host, port))
        finally:
            _setns(own)  # always come back, or this thread would stay in the instance's namespace
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    finally:
        os.close(target)
        os.close(own)
    return sock
