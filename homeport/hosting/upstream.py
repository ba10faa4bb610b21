"""Pooled keep-alive HTTP/1.1 connections to serving instances inside their network namespaces.

One :class:`UpstreamPool` per published instance holds idle connections; an
:class:`UpstreamConnection` is an :class:`asyncio.Protocol` that carries one request/response
exchange at a time and parses responses with ``httptools`` (llhttp, in C).

Concurrency model: everything here runs on the router's event loop thread, except opening a
new connection: :func:`~homeport.hosting.netns.connect_in_netns` switches the calling thread's
network namespace with ``setns(2)``, so it runs in a small dedicated thread pool and only the
connected socket is handed back to the loop. A pooled connection is reused without leaving the
loop, so the hot path has no thread hop. ``UpstreamPool.outstanding`` and ``retired`` are plain
attributes that other threads may read (an int/bool read is atomic under the GIL); only the loop
writes ``outstanding`` and the idle list.

Failure vocabulary (the router re-exports these; the API layer maps them to AWS errors):

* :class:`UpstreamUnavailable`: no connection could be made, or a fresh connection was closed
  before any response byte arrived. :class:`ConnectionDropped` is the same on a *reused*
  connection, which the router retries once on a fresh one (the instance closed an idle
  keep-alive connection while the request was on its way).
* :class:`UpstreamTimeout`: no complete response (or, streaming, no next chunk) in time.
* :class:`UpstreamBroken` (a subclass of UpstreamUnavailable): the response started and then
  broke off or was malformed; never retried, because the instance may already have acted on
  the request.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import math
import socket
from collections.abc import Sequence
from typing import cast

import httptools

from homeport.hosting.netns import connect_in_netns
from homeport.hosting.routes import InstanceRoute


class RouterError(Exception):
    """Base of every failure of an invocation (routing or upstream)."""


class UpstreamError(RouterError):
    """Base of the failures of one exchange with an instance."""


class UpstreamUnavailable(UpstreamError):
    """The instance could not be reached (refused, namespace gone, closed before answering)."""


class ConnectionDropped(UpstreamUnavailable):
    """A pooled connection closed before any response byte arrived: safe to retry once."""


class UpstreamTimeout(UpstreamError):
    """The instance did not answer in time."""


class UpstreamBroken(UpstreamUnavailable):
    """The response started but was cut off or could not be parsed (never retried).

    A kind of UpstreamUnavailable, so callers that map only that still catch it."""


# Hop-by-hop headers (RFC 9110 §7.6.1) and those the router sets itself: never forwarded.
# Content-Length is dropped from responses too: the caller re-frames the body it is given.
_REQUEST_SKIP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",  # the whole body is sent at once; a 100-continue handshake would only stall
    )
)
_RESPONSE_SKIP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    )
)
_FRAMING = (b"content-length", b"transfer-encoding")

# Bodies above this are written separately from the head instead of being copied into it.
_COALESCE_LIMIT = 64 * 1024
# Streaming: stop reading from the instance while this much is buffered and not yet consumed.
_STREAM_HIGH_WATER = 1024 * 1024
_STREAM_LOW_WATER = 256 * 1024


def request_line(method: str, path: str, host: bytes) -> bytes:
    """``POST /invocations HTTP/1.1`` and the Host header, the path checked."""
    if not path.startswith("/") or any(c in path for c in " \r\n\t\0"):
        raise ValueError(f"invalid request path {path!r}")
    return f"{method} {path} HTTP/1.1\r\nHost: ".encode("ascii") + host + b"\r\n"


def encode_request_head(line: bytes, headers: Sequence[tuple[str, str]], content_length: int) -> bytes:
    """The request head: ``line`` (see :func:`request_line`), the end-to-end ``headers`` (hop-by-hop
    ones removed), and Content-Length."""
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _REQUEST_SKIP:
            if lowered == "connection":
                return _encode_request_head_slow(line, headers, content_length)
            continue
        kept.append(f"{name}: {value}\r\n")
    block = "".join(kept)
    # A CR or LF inside a name or value would split a header and could smuggle a second request
    # to the instance; each header contributes exactly one of each, so counting catches it.
    if block.count("\n") != len(kept) or block.count("\r") != len(kept):
        raise ValueError("a request header name or value contains CR or LF")
    return b"".join((line, block.encode("latin-1"), b"Content-Length: %d\r\n\r\n" % content_length))


def _encode_request_head_slow(line: bytes, headers: Sequence[tuple[str, str]], content_length: int) -> bytes:
    # Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    named = {"connection"}
    for name, value in headers:
        if name.lower() == "connection":
            named.update(token.strip().lower() for token in value.split(","))
    kept = [(name, value) for name, value in headers if name.lower() not in named]
    return encode_request_head(line, kept, content_length)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to an instance; one exchange at a time.

    :meth:`send` writes a request and returns a future that resolves when the whole response
    is in (or, streaming, when its head is); the router then reads :attr:`status`,
    :attr:`headers` and :meth:`take_body` / :meth:`read_chunk`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False  # served a response before: a drop without answer may be a stale close
        # The exchange in progress
        self._busy = False
        self._streaming = False
        self._responded = False  # any response byte arrived: never retry
        self._waiter: asyncio.Future[None] | None = None
        # Deadlines: ``_deadline`` is when the wait in progress must end (inf: none). The timer is
        # re-armed lazily instead of created and cancelled per request (a measurable cost at
        # thousands of requests a second): when it fires early for a later deadline it re-arms.
        self._deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._framed = False  # Content-Length or Transfer-Encoding: else the body runs until close
        self._head_done = False
        self._interim = False  # a 1xx response before the real one
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._error: BaseException | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio's.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._busy or self.complete:
            self.close()  # bytes nobody asked for: the connection's framing can't be trusted
            return
        self._responded = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"malformed response from the instance: {exc}"))

    def eof_received(self) -> bool:
        self.closed = True  # not reusable from now on, even before connection_lost runs
        return False  # close our side too; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._busy or self.complete:
            return
        if not self._responded:
            reason = f": {exc}" if exc else ""
            if self.reused:
                self._fail(ConnectionDropped(f"pooled connection closed before the response{reason}"))
            else:
                self._fail(UpstreamUnavailable(f"the instance closed the connection unanswered{reason}"))
        elif self._head_done and not self._framed and not self._interim:
            self._on_complete()  # a body delimited by the end of the connection
        else:
            self._fail(UpstreamBroken("the instance closed the connection in the middle of the response"))

    def pause_writing(self) -> None:  # the request body is already in memory; nothing to hold back
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in _RESPONSE_SKIP:
            if lowered in _FRAMING:
                self._framed = True
            return
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._interim = True  # 100 Continue, 103 Early Hints: wait for the final response
            return
        self.status = status
        self._head_done = True
        if self._streaming:
            self._deadline = math.inf  # from here each chunk read has its own deadline
            self._settle()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        if self._streaming:
            self._buffered += len(body)
            if self._buffered > _STREAM_HIGH_WATER and not self._paused and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()
            self._settle()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self._framed = False
            self.headers = []
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._on_complete()

    # -- the exchange -------------------------------------------------------------------------

    def send(self, head: bytes, body: bytes, streaming: bool, deadline: float) -> asyncio.Future[None]:
        """Write one request; the future resolves at the full response (or its head, streaming)."""
        transport = self._transport
        if transport is None or self.closed or self._busy:
            raise ConnectionDropped("connection not usable")
        self._busy = True
        self._streaming = streaming
        self._responded = False
        self._framed = False
        self._head_done = False
        self._interim = False
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.headers = []
        self._chunks.clear()
        self._buffered = 0
        self._error = None
        waiter = self._waiter = self._loop.create_future()
        self._arm(deadline)
        if len(body) <= _COALESCE_LIMIT:
            transport.write(head + body)  # one segment for the usual small request
        else:
            transport.writelines((head, body))
        return waiter

    def take_body(self) -> bytes:
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one chunk: no copy
        chunks.clear()
        return body

    async def read_chunk(self, timeout: float) -> bytes | None:
        """The next body chunk of a streamed response; None at its end."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _STREAM_LOW_WATER and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self.complete:
                return None
            waiter = self._waiter = self._loop.create_future()
            self._arm(self._loop.time() + timeout)
            try:
                await waiter
            finally:
                self._deadline = math.inf

    def finish(self) -> None:
        """The caller is done with the exchange (reusable only if it completed with keep-alive)."""
        self._busy = False
        if not (self.complete and self.keep_alive) or self.closed:
            self.close()
            return
        self.reused = True
        if self._paused:  # a stream left with unread chunks: the next response must be read
            self._paused = False
            if self._transport is not None:
                self._transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self._transport is not None:
            self._transport.abort()  # an unfinished exchange can't be resumed: no graceful FIN needed

    # -- internals ----------------------------------------------------------------------------

    def _on_complete(self) -> None:
        self.complete = True
        self._deadline = math.inf
        self._settle()

    def _settle(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline == math.inf or self.closed:
            return
        # The loop runs timers up to its clock resolution early; within that, it is due.
        if deadline - self._loop.time() > 0.001:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
            return
        self._deadline = math.inf
        what = "the next chunk of the response" if self._head_done else "a response"
        self._fail(UpstreamTimeout(f"the instance did not send {what} in time"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class UpstreamPool:
    """Idle keep-alive connections to one instance, and its count of requests in flight."""

    def __init__(
        self,
        route: InstanceRoute,
        executor: concurrent.futures.ThreadPoolExecutor,
        max_idle: int = 64,
    ) -> None:
        self.route = route
        self.host = f"localhost:{route.port}".encode("ascii")  # what SageMaker containers are sent
        self._lines: dict[str, bytes] = {}
        self.outstanding = 0
        self.retired = False  # no longer published: connections close as their requests finish
        self._executor = executor
        self._max_idle = max_idle
        self._idle: list[UpstreamConnection] = []

    def head(self, path: str, headers: Sequence[tuple[str, str]], content_length: int) -> bytes:
        line = self._lines.get(path)
        if line is None:
            line = request_line("POST", path, self.host)
            if len(self._lines) < 64:  # a handful of paths in practice; don't grow without bound
                self._lines[path] = line
        return encode_request_head(line, headers, content_length)

    def take(self) -> UpstreamConnection | None:
        """The most recently used idle connection (LIFO keeps few connections hot; the rest expire)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def release(self, conn: UpstreamConnection) -> None:
        conn.finish()
        if conn.closed:
            return
        if self.retired or len(self._idle) >= self._max_idle:
            conn.close()
        else:
            self._idle.append(conn)

    async def connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> UpstreamConnection:
        """A fresh connection, opened inside the instance's network namespace by a worker thread."""
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise UpstreamTimeout("no time left to connect to the instance")
        route = self.route
        connect_timeout = min(remaining, 10.0)  # bounds how long a worker thread can be held
        try:
            pending = self._executor.submit(
                connect_in_netns, route.netns_pid, route.port, connect_timeout, route.host
            )
        except RuntimeError as exc:  # the router closed while this request was on its way
            raise UpstreamUnavailable(f"cannot connect to instance {route.key}: {exc}") from exc
        try:
            sock = await asyncio.wrap_future(pending, loop=loop)
        except asyncio.CancelledError:
            pending.add_done_callback(_close_socket_result)  # the thread may still connect: don't leak it
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout(f"connecting to instance {route.key} timed out") from exc
        except OSError as exc:
            raise UpstreamUnavailable(f"cannot connect to instance {route.key}: {exc}") from exc
        try:
            _transport, conn = await loop.create_connection(lambda: UpstreamConnection(loop), sock=sock)
        except BaseException:
            sock.close()
            raise
        return conn

    def close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _close_socket_result(future: concurrent.futures.Future[socket.socket]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()
