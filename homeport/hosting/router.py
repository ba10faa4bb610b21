"""The invocation data plane: pick a variant and an instance, forward the request, return the answer.

:class:`Router` serves ``InvokeEndpoint`` (:meth:`Router.invoke`) and
``InvokeEndpointWithResponseStream`` (:meth:`Router.invoke_stream`). Variant choice is weighted
random over the variants with weight > 0 that have instances (``TargetVariant`` overrides);
within a variant the instance with the fewest requests in flight wins, ties broken at random.
Requests travel over pooled keep-alive HTTP/1.1 connections (:mod:`homeport.hosting.upstream`);
a request sent on a pooled connection that the instance closed meanwhile is retried once on a
fresh connection, never after any response byte arrived.

Concurrency model:

* ``invoke``/``invoke_stream`` run on one asyncio event loop (the server's), bound on first use.
  Selecting an instance and counting it as outstanding happen without an ``await`` in between,
  so the counts the selection reads are exact on that loop.
* ``publish``/``withdraw`` may be called from any thread (the endpoint controller's). They
  build a new immutable routing snapshot under a lock and swap it in with one assignment; a
  request reads the snapshot once, so it sees the old routes or the new, never a mix. Requests
  already in flight to an instance that is no longer published finish normally; its connections
  are closed as they come back and its pool is dropped once idle (on the loop, scheduled with
  ``call_soon_threadsafe``).
* ``outstanding`` may be called from any thread: it sums ints the loop maintains.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import random
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from homeport.hosting.routes import EndpointRoute, InstanceRoute
from homeport.hosting.upstream import (
    ConnectionDropped,
    RouterError,
    UpstreamBroken,
    UpstreamConnection,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "Invocation",
    "NoHealthyInstance",
    "NoSuchRoute",
    "ResponseStream",
    "Router",
    "RouterError",
    "UnknownVariant",
    "UpstreamBroken",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class NoSuchRoute(RouterError):
    """No endpoint of that name is published."""


class UnknownVariant(RouterError):
    """The endpoint has no variant named by TargetVariant."""


class NoHealthyInstance(RouterError):
    """The chosen variant (or every weighted variant) has no instance to send to."""


@dataclass(slots=True)
class Invocation:
    variant: str
    instance: str  # InstanceRoute.key of the instance that answered
    status: int
    headers: list[tuple[str, str]]  # end-to-end response headers (no hop-by-hop, no Content-Length)
    body: bytes


class ResponseStream:
    """A response whose body is read chunk by chunk as the instance sends it.

    Iterate it (``async for chunk in stream``) to the end, or call :meth:`aclose` (``async with``
    does) when stopping early: until then the instance counts as having a request in flight.
    """

    def __init__(
        self,
        router: Router,
        pool: UpstreamPool,
        conn: UpstreamConnection,
        variant: str,
        timeout: float,
    ) -> None:
        self.variant = variant
        self.instance = pool.route.key
        self.status = conn.status
        self.headers = conn.headers
        self.body: AsyncIterator[bytes] = self  # the chunks, for ``async for chunk in stream.body``
        self._router = router
        self._pool = pool
        self._conn = conn
        self._timeout = timeout
        self._done = False

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._conn.read_chunk(self._timeout)
        except BaseException:
            self._finish()
            raise
        if chunk is None:
            self._finish()
            raise StopAsyncIteration
        return chunk

    async def read(self) -> bytes:
        """The rest of the body at once."""
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        self._finish()

    async def __aenter__(self) -> ResponseStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._pool.release(self._conn)  # closes it unless the response completed with keep-alive
            self._router._done_with(self._pool)


class _Variant:
    __slots__ = ("name", "weight", "pools")

    def __init__(self, name: str, weight: float, pools: tuple[UpstreamPool, ...]) -> None:
        self.name = name
        self.weight = weight
        self.pools = pools


class _Table:
    """One endpoint's routes, precomputed for the hot path; never changed after it is built."""

    __slots__ = ("name", "variants", "choices", "cumulative", "total")

    def __init__(self, name: str, variants: list[_Variant]) -> None:
        self.name = name
        self.variants = {v.name: v for v in variants}
        # Variants without instances are left out of the draw: their share goes to the others
        # rather than failing requests while, say, a variant's only instance is replaced.
        self.choices = tuple(v for v in variants if v.weight > 0 and v.pools)
        self.cumulative: list[float] = []
        total = 0.0
        for v in self.choices:
            total += v.weight
            self.cumulative.append(total)
        self.total = total


class Router:
    """Routes invocations to published endpoints' instances over pooled HTTP/1.1 connections."""

    def __init__(self, connect_threads: int = 4, max_idle_per_instance: int = 64) -> None:
        self._lock = threading.Lock()  # guards _endpoints, _pools and the building of _tables
        self._endpoints: dict[str, EndpointRoute] = {}
        self._tables: dict[str, _Table] = {}  # replaced whole, never mutated: read without the lock
        self._pools: dict[InstanceRoute, UpstreamPool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_idle = max_idle_per_instance
        # setns(2) moves the calling thread, so connections are opened on these threads only.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=connect_threads, thread_name_prefix="homeport-upstream-connect"
        )
        self._closed = False

    # -- routes (any thread) ------------------------------------------------------------------

    def publish(self, route: EndpointRoute) -> None:
        """Route ``route.name`` to these variants and instances from now on (replacing any earlier)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the router is closed")
            endpoints = dict(self._endpoints)
            endpoints[route.name] = route
            self._rebuild(endpoints)

    def withdraw(self, endpoint: str) -> None:
        """Stop routing to ``endpoint``; requests in flight finish."""
        with self._lock:
            if endpoint not in self._endpoints:
                return
            endpoints = dict(self._endpoints)
            del endpoints[endpoint]
            self._rebuild(endpoints)

    def outstanding(self, instance_key: str) -> int:
        """Requests in flight to the instance (streams count until read to the end or closed)."""
        with self._lock:
            return sum(pool.outstanding for route, pool in self._pools.items() if route.key == instance_key)

    def _rebuild(self, endpoints: dict[str, EndpointRoute]) -> None:
        used: set[InstanceRoute] = set()
        tables: dict[str, _Table] = {}
        for endpoint in endpoints.values():
            variants = []
            for variant in endpoint.variants:
                pools = []
                for instance in variant.instances:
                    pool = self._pools.get(instance)
                    if pool is None:
                        pool = self._pools[instance] = UpstreamPool(instance, self._executor, self._max_idle)
                    pool.retired = False
                    pools.append(pool)
                    used.add(instance)
                variants.append(_Variant(variant.name, variant.weight, tuple(pools)))
            tables[endpoint.name] = _Table(endpoint.name, variants)
        for instance, pool in self._pools.items():
            if instance not in used:
                pool.retired = True
        self._endpoints = endpoints
        self._tables = tables  # the swap: one reference assignment
        loop = self._loop
        if loop is None:
            # No request was ever made, so no connection exists: drop unused pools right away.
            for instance in [i for i, p in self._pools.items() if p.retired]:
                del self._pools[instance]
        elif any(pool.retired for pool in self._pools.values()):
            # RuntimeError: the loop is closed, and its connections went with it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._reap)

    def _reap(self) -> None:
        """On the loop: close the idle connections of unpublished instances, drop their idle pools."""
        with self._lock:
            for instance, pool in list(self._pools.items()):
                if pool.retired:
                    pool.close_idle()
                    if pool.outstanding == 0:
                        del self._pools[instance]

    # -- invocations (the event loop) ---------------------------------------------------------

    async def invoke(
        self,
        endpoint: str,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        target_variant: str | None = None,
        path: str = "/invocations",
        timeout: float = 60.0,
    ) -> Invocation:
        """Send ``body`` to one instance of the endpoint and return its whole response.

        ``timeout`` bounds everything: connecting, the retry, and reading the whole response.
        """
        loop = self._loop or self._bind_loop()
        variant, pool = self._select(endpoint, target_variant)
        head = pool.head(path, headers, len(body))
        deadline = loop.time() + timeout
        pool.outstanding += 1
        try:
            # _exchange inlined for the common case (a pooled connection): one coroutine less.
            conn = pool.take()
            if conn is not None:
                try:
                    await conn.send(head, body, False, deadline)
                except ConnectionDropped:
                    conn.finish()  # closed by the instance meanwhile: once more on a fresh one
                    conn = None
                except BaseException:
                    conn.finish()
                    raise
            if conn is None:
                conn = await self._fresh(loop, pool, head, body, False, deadline)
            invocation = Invocation(variant.name, pool.route.key, conn.status, conn.headers, conn.take_body())
            pool.release(conn)
            return invocation
        finally:
            self._done_with(pool)

    async def invoke_stream(
        self,
        endpoint: str,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        target_variant: str | None = None,
        path: str = "/invocations",
        timeout: float = 60.0,
    ) -> ResponseStream:
        """Like :meth:`invoke`, but return as soon as the response head is in.

        ``timeout`` bounds the wait for the head, then separately the wait for each next chunk.
        """
        loop = self._loop or self._bind_loop()
        variant, pool = self._select(endpoint, target_variant)
        head = pool.head(path, headers, len(body))
        pool.outstanding += 1
        try:
            conn = await self._exchange(loop, pool, head, body, True, loop.time() + timeout)
        except BaseException:
            self._done_with(pool)
            raise
        return ResponseStream(self, pool, conn, variant.name, timeout)

    def _select(self, endpoint: str, target_variant: str | None) -> tuple[_Variant, UpstreamPool]:
        table = self._tables.get(endpoint)
        if table is None:
            raise NoSuchRoute(f"Endpoint {endpoint} is not being served.")
        if target_variant is None:
            choices = table.choices
            if not choices:
                raise NoHealthyInstance(f"Endpoint {endpoint} has no variant with a weight and an instance.")
            if len(choices) == 1:
                variant = choices[0]
            else:
                index = bisect.bisect_right(table.cumulative, random.random() * table.total)
                variant = choices[min(index, len(choices) - 1)]  # min: float rounding at the top end
        else:
            found = table.variants.get(target_variant)
            if found is None:
                raise UnknownVariant(f"Endpoint {endpoint} has no variant named {target_variant}.")
            variant = found
            if not variant.pools:
                raise NoHealthyInstance(f"Variant {target_variant} of endpoint {endpoint} has no instance.")
        pools = variant.pools
        if len(pools) == 1:
            return variant, pools[0]
        # Least outstanding requests; ties broken uniformly (reservoir sampling over the tied ones).
        best = pools[0]
        fewest = best.outstanding
        ties = 1
        for pool in pools[1:]:
            count = pool.outstanding
            if count < fewest:
                best, fewest, ties = pool, count, 1
            elif count == fewest:
                ties += 1
                if random.random() * ties < 1.0:
                    best = pool
        return variant, best

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: UpstreamPool,
        head: bytes,
        body: bytes,
        streaming: bool,
        deadline: float,
    ) -> UpstreamConnection:
        conn = pool.take()
        if conn is not None:
            try:
                await conn.send(head, body, streaming, deadline)
                return conn
            except ConnectionDropped:
                # The instance closed this idle connection while the request was on its way
                # (uvicorn does after 5 s idle); no response byte came back, so the request
                # goes once more, on a fresh connection.
                conn.finish()
            except BaseException:
                conn.finish()  # timeout, cancellation, broken response: the connection is done
                raise
        return await self._fresh(loop, pool, head, body, streaming, deadline)

    async def _fresh(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: UpstreamPool,
        head: bytes,
        body: bytes,
        streaming: bool,
        deadline: float,
    ) -> UpstreamConnection:
        conn = await pool.connect(loop, deadline)
        try:
            await conn.send(head, body, streaming, deadline)
        except BaseException:
            conn.finish()
            raise
        return conn

    def _done_with(self, pool: UpstreamPool) -> None:
        pool.outstanding -= 1
        if pool.retired and pool.outstanding == 0:
            self._reap()

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise RuntimeError("the router is closed")
            if self._loop is None:
                self._loop = loop
        return loop

    async def close(self) -> None:
        """Withdraw every endpoint and close idle connections; requests in flight finish, then their
        connections close. Later invocations raise NoSuchRoute."""
        with self._lock:
            self._closed = True
            self._endpoints = {}
            self._tables = {}
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.retired = True
            pool.close_idle()
        # Connects already queued still run (each is bounded by its timeout): cancelling them
        # would surface in their callers as a cancellation instead of an error.
        self._executor.shutdown(wait=False)
