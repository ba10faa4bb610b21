"""Loaded at start-up by every Python process of an SDK end-to-end run (PYTHONPATH=this folder).

1. **No egress.** An audit hook (``sys.addaudithook``) sees every ``socket.connect``,
   ``socket.getaddrinfo``, ``socket.gethostbyname`` and ``socket.sendto`` of the process.
   Each target is appended to ``$HOMEPORT_EGRESS_LOG`` (JSON lines: event, host, port,
   allowed); a target that is not loopback (127.0.0.0/8, ::1, ``localhost``) or a Unix socket
   is refused with an ``OSError`` before anything leaves the machine. The test reads the log:
   every record allowed, and at least one connection made (the hook is live).
2. **Fast clock** (``HOMEPORT_FAST_CLOCK=1``). The SDK polls on fixed intervals (10 s log tails,
   30 s endpoint polls, "describe again after 30 s"): ``time.sleep(s)`` really sleeps at most
   ``$HOMEPORT_FAST_CLOCK_MAX_SLEEP`` seconds (0.5) and moves ``time.time()`` on by the rest,
   so the SDK's own arithmetic still sees the whole interval. Nothing of the SDK is changed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
import time

_LOG = os.environ.get("HOMEPORT_EGRESS_LOG")
_LOCK = threading.Lock()
_SEEN: set[tuple[str, str, str]] = set()
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: object) -> bool:
    if host is None:  # getaddrinfo(None, port): the wildcard/loopback of a local listener
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").rstrip(".").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _record(event: str, host: object, port: object, allowed: bool) -> None:
    key = (event, repr(host), repr(port))
    with _LOCK:
        if key in _SEEN:
            return
        _SEEN.add(key)
        if _LOG:
            line = json.dumps(
                {"event": event, "host": str(host), "port": str(port), "allowed": allowed, "pid": os.getpid()}
            )
            with open(_LOG, "a", encoding="utf-8") as out:
                out.write(line + "\n")


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event in ("socket.connect", "socket.sendto"):
        sock, address = args[0], args[-1]
        family = getattr(sock, "family", None)
        if family == getattr(socket, "AF_UNIX", None) or isinstance(address, (str, bytes)):
            _record(event, address, "unix", True)
            return
        if not isinstance(address, tuple) or not address:
            return
        host, port = address[0], address[1] if len(address) > 1 else None
    elif event == "socket.getaddrinfo":
        host, port = args[0], args[1]
    elif event == "socket.gethostbyname" or event == "socket.gethostbyaddr":
        host, port = args[0], None
    else:
        return
    allowed = is_loopback(host)
    _record(event, host, port, allowed)
    if not allowed:
        if event == "socket.getaddrinfo":
            raise socket.gaierror(socket.EAI_NONAME, f"homeport-e2e: egress to {host!r} refused")
        raise ConnectionRefusedError(f"homeport-e2e: egress to {host!r}:{port} refused")


if _LOG:
    sys.addaudithook(_hook)


if os.environ.get("HOMEPORT_FAST_CLOCK") == "1":
    _real_sleep = time.sleep
    _real_time = time.time
    _real_time_ns = time.time_ns
    _max_sleep = float(os.environ.get("HOMEPORT_FAST_CLOCK_MAX_SLEEP", "0.5"))
    _offset = 0.0

    def _fast_sleep(seconds: float) -> None:
        global _offset
        real = min(seconds, _max_sleep)
        _real_sleep(real)
        if seconds > real:
            with _LOCK:
                _offset += seconds - real

    def _fast_time() -> float:
        return _real_time() + _offset

    def _fast_time_ns() -> int:
        return _real_time_ns() + int(_offset * 1e9)

    time.sleep = _fast_sleep
    time.time = _fast_time
    time.time_ns = _fast_time_ns
