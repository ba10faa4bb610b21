"""Tries the ways out a client could take; the egress hook must refuse each before it leaves.

Prints nothing; writes {attempt: "ok" | "<exception>: <message>"} to $HOMEPORT_SDK_RESULT.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from sdk_common import done


def loopback() -> None:
    socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=2).close()


ATTEMPTS: dict[str, Callable[[], object]] = {
    "connect": lambda: socket.socket().connect(("203.0.113.7", 443)),
    "create_connection": lambda: socket.create_connection(("198.51.100.9", 80), timeout=2),
    "resolve": lambda: socket.getaddrinfo("sts.us-east-1.amazonaws.com", 443),
    "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)),
    "loopback": loopback,
}
out = {}
for name, attempt in ATTEMPTS.items():
    try:
        attempt()
        out[name] = "ok"
    except OSError as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
done(**out)
