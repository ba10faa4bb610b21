"""The invocation router against real instances in private network namespaces.

Each instance is a ``ProcessRuntime`` sandbox (``network="none"``) whose ``serve`` script runs

* on port 8080 a uvicorn + Starlette app (``APP``): echoes bodies, reports what it was sent,
  sleeps, fails, streams, or asks to close the connection, as the request's ``x-mode`` says;
  its environment gives it a name and an optional per-request delay, and ``KEEPALIVE`` sets
  uvicorn's ``--timeout-keep-alive``;
* on port 8081 a raw asyncio HTTP server (``RAW``) for what uvicorn never does: bodies that run
  until the connection closes, a 100 Continue, malformed or cut-off responses, and closing a
  pooled connection exactly when the next request arrives (the keep-alive race).

The interpreter is the tests' own venv (``LocalImage(venv=Path(sys.prefix))``), whose ``bin/``
comes first on the sandbox's PATH, so ``uvicorn`` and ``python`` resolve to it. Each test makes
its own event loop (``asyncio.run``) and Router. Instances are shared by the module and killed
by their handles at the end; an output reader thread per instance keeps its pipe drained.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from botocore.eventstream import EventStreamBuffer

from homeport.hosting import eventstream
from homeport.hosting.netns import connect_in_netns
from homeport.hosting.router import (
    Invocation,
    NoHealthyInstance,
    NoSuchRoute,
    Router,
    UnknownVariant,
    UpstreamBroken,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from homeport.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute
from homeport.images.model import LocalImage
from homeport.runtimes.base import RunSpec
from homeport.runtimes.process import ProcessRun, ProcessRuntime

T = TypeVar("T")

APP = r"""
import asyncio, json, os
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

NAME = os.environ.get("INSTANCE_NAME", "?")
DELAY = float(os.environ.get("DELAY", "0"))


async def ping(request):
    return Response(b"")


async def invocations(request):
    body = await request.body()
    if DELAY:
        await asyncio.sleep(DELAY)
    mode = request.headers.get("x-mode", "echo")
    common = {"x-instance": NAME, "x-peer": str(request.client.port)}
    if mode == "sleep":
        await asyncio.sleep(float(request.headers["x-sleep"]))
    elif mode == "status":
        return Response(b"model failed", status_code=int(request.headers["x-status"]), headers=common)
    elif mode == "inspect":
        seen = {"headers": list(request.headers.items()), "path": request.url.path, "length": len(body)}
        return Response(json.dumps(seen), media_type="application/json", headers=common)
    elif mode == "stream":
        count, gap = int(request.headers.get("x-chunks", "3")), float(request.headers.get("x-gap", "0.3"))

        async def chunks():
            for i in range(count):
                if i:
                    await asyncio.sleep(gap)
                yield b"chunk-%d;" % i

        return StreamingResponse(chunks(), media_type="text/plain", headers=common)
    elif mode == "close":
        common["connection"] = "close"
    media = request.headers.get("content-type", "application/octet-stream")
    return Response(body, media_type=media, headers={**common, "x-custom": "kept"})


app = Starlette(routes=[
    Route("/ping", ping),
    Route("/invocations", invocations, methods=["POST"]),
    Route("/other", invocations, methods=["POST"]),
])
"""

RAW = r"""
import asyncio, json

counts = {}


def answer(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def handle(reader, writer):
    served = {}  # requests on this connection, by path
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length)
            served[path] = served.get(path, 0) + 1
            counts[path] = counts.get(path, 0) + 1
            if path == "/count":
                writer.write(answer(json.dumps(counts).encode()))
            elif path == "/until-close":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                for part in (b"one,", b"two,", body):
                    await writer.drain()
                    await asyncio.sleep(0.2)
                    writer.write(part)
                await writer.drain()
                return
            elif path == "/drop-second" and served[path] >= 2:
                return  # as if the idle keep-alive timer fired just as this request arrived
            elif path == "/partial-second" and served[path] >= 2:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
                await writer.drain()
                return
            elif path == "/half":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                await writer.drain()
                return
            elif path == "/garbage":
                writer.write(b"SPDY/9 what is this\r\n\r\n")
            elif path == "/silent":
                return
            elif path == "/continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"after-continue"))
            else:
                writer.write(answer(b"raw:" + body))
            await writer.drain()
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", 8081)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"""

SERVE = """#!/bin/sh
python /opt/program/raw.py &
exec uvicorn app:app --host 0.0.0.0 --port 8080 --no-access-log --log-level warning \
    --timeout-keep-alive "${KEEPALIVE:-5}"
"""


@dataclass
class Instance:
    name: str
    run: ProcessRun
    output: collections.deque[bytes] = field(default_factory=lambda: collections.deque(maxlen=200))

    @property
    def pid(self) -> int:
        return self.run.pid

    def route(self, key: str | None = None, port: int = 8080) -> InstanceRoute:
        return InstanceRoute(key=key or self.name, netns_pid=self.pid, port=port)

    def log(self) -> str:
        return b"".join(self.output).decode(errors="replace")


class Fleet:
    """Starts instances for the module; kills them all at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.runtime = ProcessRuntime()
        self.instances: list[Instance] = []
        root = base / "image"
        root.mkdir()
        (root / "app.py").write_text(APP)
        (root / "raw.py").write_text(RAW)
        (root / "serve").write_text(SERVE)
        (root / "serve").chmod(0o755)
        self.image = LocalImage(
            name="router-test", tag="latest", root=root, at="/opt/program", venv=Path(sys.prefix)
        )

    def start(self, name: str, **env: str) -> Instance:
        spec = RunSpec(
            name=f"router-test/{name}",
            image=self.image,
            argv=["serve"],
            env={"INSTANCE_NAME": name, **env},
            mounts=[],
            network="none",
            scratch=self.base / f"scratch-{name}-{uuid.uuid4().hex[:6]}",
        )
        instance = Instance(name, self.runtime.start(spec))
        self.instances.append(instance)
        threading.Thread(target=self._drain, args=(instance,), daemon=True).start()
        return instance

    @staticmethod
    def _drain(instance: Instance) -> None:
        for line in instance.run.output:
            instance.output.append(line)

    def wait_ready(self, *instances: Instance, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for instance in instances:
            for port in (8080, 8081):
                while not _answers(instance.pid, port):
                    if instance.run.wait(0) is not None or time.monotonic() > deadline:
                        raise AssertionError(
                            f"instance {instance.name} never answered on {port}:\n{instance.log()}"
                        )
                    time.sleep(0.05)

    def close(self) -> None:
        for instance in self.instances:
            instance.run.kill()


def _answers(pid: int, port: int) -> bool:
    try:
        sock = connect_in_netns(pid, port, 1.0)
    except OSError:
        return False
    conn = http.client.HTTPConnection("localhost", port, timeout=5)
    conn.sock = sock
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@dataclass
class Instances:
    fleet: Fleet
    main: Instance
    second: Instance
    slow: Instance
    short: Instance  # uvicorn --timeout-keep-alive 1


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instances]:
    fleet = Fleet(tmp_path_factory.mktemp("router"))
    try:
        instances = Instances(
            fleet=fleet,
            main=fleet.start("main"),
            second=fleet.start("second"),
            slow=fleet.start("slow", DELAY="0.1"),
            short=fleet.start("short", KEEPALIVE="1"),
        )
        fleet.wait_ready(instances.main, instances.second, instances.slow, instances.short)
        yield instances
    finally:
        fleet.close()


def single(endpoint: str, *instances: InstanceRoute, variant: str = "v1") -> EndpointRoute:
    return EndpointRoute(name=endpoint, variants=(VariantRoute(variant, 1.0, tuple(instances)),))


def run(scenario: Callable[[Router], Awaitable[T]], loop: str = "asyncio") -> T:
    """Run ``scenario(router)`` on a fresh event loop with a fresh Router, closed afterwards."""

    async def main() -> T:
        router = Router()
        try:
            return await scenario(router)
        finally:
            await router.close()

    if loop == "uvloop":
        return uvloop.run(main())
    return asyncio.run(main())


def header(invocation: Invocation, name: str) -> str | None:
    return next((v for k, v in invocation.headers if k.lower() == name), None)


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_bytes_and_headers_round_trip(fleet: Instances, loop: str) -> None:
    payload = bytes(range(256)) * 64

    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.main.route()))
        result = await router.invoke(
            "ep",
            payload,
            [("Content-Type", "application/x-binary"), ("Accept", "*/*"), ("X-Mode", "echo")],
        )
        assert (result.variant, result.instance, result.status) == ("v1", "main", 200)
        assert result.body == payload
        assert header(result, "content-type") == "application/x-binary"
        assert header(result, "x-custom") == "kept"
        assert header(result, "x-instance") == "main"
        names = {k.lower() for k, _ in result.headers}
        assert not names & {"content-length", "connection", "transfer-encoding", "keep-alive"}

        # What the instance was sent: hop-by-hop headers gone, Host and Content-Length set by us.
        sent = [
            ("Content-Type", "text/csv"),
            ("X-Amzn-SageMaker-Custom-Attributes", "trace=1"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "dropped because Connection names it"),
            ("Transfer-Encoding", "chunked"),
            ("Keep-Alive", "timeout=5"),
            ("Host", "example.com"),
            ("Content-Length", "999"),
            ("X-Mode", "inspect"),
        ]
        result = await router.invoke("ep", b"1,2,3", sent)
        seen = json.loads(result.body)
        headers = dict(seen["headers"])
        assert headers["host"] == "localhost:8080"
        assert headers["content-length"] == "5"
        assert headers["content-type"] == "text/csv"
        assert headers["x-amzn-sagemaker-custom-attributes"] == "trace=1"
        assert not set(headers) & {"connection", "x-hop", "transfer-encoding", "keep-alive"}
        assert seen["length"] == 5
        assert seen["path"] == "/invocations"

        result = await router.invoke("ep", b"", [("X-Mode", "inspect")], path="/other")
        assert json.loads(result.body)["path"] == "/other"
        assert json.loads(result.body)["length"] == 0

        big = bytes(range(251)) * 20_000  # ~5 MB each way
        result = await router.invoke("ep", big, [])
        assert result.body == big

        with pytest.raises(ValueError):
            await router.invoke("ep", b"", [("X-Evil", "a\r\nX-Smuggled: 1")])
        with pytest.raises(ValueError):
            await router.invoke("ep", b"", [], path="/invocations HTTP/1.1\r\nX: y")
        assert router.outstanding("main") == 0

    run(scenario, loop)


def test_connections_are_pooled_and_connection_close_is_honoured(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.main.route()))
        peers = [header(await router.invoke("ep", b"x", []), "x-peer") for _ in range(5)]
        assert len(set(peers)) == 1, peers  # one keep-alive connection, reused

        closing = await router.invoke("ep", b"x", [("X-Mode", "close")])
        assert closing.status == 200
        assert header(closing, "x-peer") == peers[0]
        after = await router.invoke("ep", b"x", [])
        assert header(after, "x-peer") != peers[0]  # the closed connection was not reused

        # Concurrent requests open several connections, which are then reused.
        first = await asyncio.gather(
            *(router.invoke("ep", b"x", [("X-Mode", "sleep"), ("X-Sleep", "0.2")]) for _ in range(4))
        )
        second = await asyncio.gather(
            *(router.invoke("ep", b"x", [("X-Mode", "sleep"), ("X-Sleep", "0.2")]) for _ in range(4))
        )
        assert len({header(r, "x-peer") for r in first}) == 4
        assert {header(r, "x-peer") for r in second} == {header(r, "x-peer") for r in first}

    run(scenario)


def test_upstream_errors_pass_through_as_status(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.main.route()))
        for status in (500, 404, 503):
            result = await router.invoke("ep", b"x", [("X-Mode", "status"), ("X-Status", str(status))])
            assert (result.status, result.body) == (status, b"model failed")
        assert (await router.invoke("ep", b"ok", [])).body == b"ok"

    run(scenario)


def test_bodies_until_close_and_interim_responses(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.main.route(port=8081)))
        result = await router.invoke("ep", b"three", [], path="/until-close")
        assert (result.status, result.body) == (200, b"one,two,three")
        assert header(result, "content-type") == "text/plain"
        result = await router.invoke("ep", b"", [], path="/continue")
        assert (result.status, result.body) == (200, b"after-continue")

        stream = await router.invoke_stream("ep", b"three", [], path="/until-close")
        assert [chunk async for chunk in stream.body] == [b"one,", b"two,", b"three"]

    run(scenario)


# -- choosing variants and instances ------------------------------------------------------------


def test_weights(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        a, b = fleet.main.route("a"), fleet.main.route("b")
        router.publish(EndpointRoute("ep", (VariantRoute("zero", 0.0, (a,)), VariantRoute("one", 1.0, (b,)))))
        results = [await router.invoke("ep", b"x", []) for _ in range(100)]
        assert {r.variant for r in results} == {"one"}

        router.publish(
            EndpointRoute("ep", (VariantRoute("light", 1.0, (a,)), VariantRoute("heavy", 3.0, (b,))))
        )
        variants: collections.Counter[str] = collections.Counter()
        for _ in range(20):
            batch = await asyncio.gather(*(router.invoke("ep", b"x", []) for _ in range(20)))
            variants.update(r.variant for r in batch)
        assert variants["light"] + variants["heavy"] == 400
        # Binomial(400, 0.75): mean 300, sd 8.7; the bounds are more than 4.5 sd away.
        assert 260 <= variants["heavy"] <= 340, variants

        # A variant without instances is left out of the draw rather than failing requests.
        router.publish(EndpointRoute("ep", (VariantRoute("empty", 5.0, ()), VariantRoute("one", 1.0, (b,)))))
        assert {(await router.invoke("ep", b"x", [])).variant for _ in range(20)} == {"one"}

    run(scenario)


def test_target_variant_and_routing_errors(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        a, b = fleet.main.route("a"), fleet.second.route("b")
        router.publish(EndpointRoute("ep", (VariantRoute("zero", 0.0, (a,)), VariantRoute("one", 1.0, (b,)))))
        for _ in range(10):
            result = await router.invoke("ep", b"x", [], target_variant="zero")
            assert (result.variant, header(result, "x-instance")) == ("zero", "main")
        with pytest.raises(UnknownVariant):
            await router.invoke("ep", b"x", [], target_variant="nope")
        with pytest.raises(NoSuchRoute):
            await router.invoke("other", b"x", [])
        with pytest.raises(NoSuchRoute):
            await router.invoke_stream("other", b"x", [])

        router.publish(EndpointRoute("bare", (VariantRoute("v", 1.0, ()), VariantRoute("w", 0.0, (a,)))))
        with pytest.raises(NoHealthyInstance):
            await router.invoke("bare", b"x", [])
        with pytest.raises(NoHealthyInstance):
            await router.invoke("bare", b"x", [], target_variant="v")
        assert (await router.invoke("bare", b"x", [], target_variant="w")).variant == "w"

        router.withdraw("ep")
        router.withdraw("ep")  # twice is fine
        with pytest.raises(NoSuchRoute):
            await router.invoke("ep", b"x", [])

    run(scenario)


def test_least_outstanding_requests(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        slow, fast = fleet.slow.route(), fleet.main.route()
        router.publish(single("ep", slow, fast))
        counts: collections.Counter[str] = collections.Counter()

        async def worker() -> None:
            for _ in range(15):
                counts[(await router.invoke("ep", b"x", [])).instance] += 1

        await asyncio.gather(*(worker() for _ in range(6)))
        assert counts["slow"] + counts["main"] == 90
        # Round robin would give the slow instance 45; least-outstanding sends it a request
        # only when it is idle and the fast one is busy at that moment.
        assert counts["slow"] <= 25, counts

        # outstanding() counts in-flight requests, from any thread.
        router.publish(single("ep", slow))
        task = asyncio.ensure_future(router.invoke("ep", b"x", [("X-Mode", "sleep"), ("X-Sleep", "0.5")]))
        await asyncio.sleep(0.2)
        seen = await asyncio.get_running_loop().run_in_executor(None, router.outstanding, "slow")
        assert seen == 1
        await task
        assert router.outstanding("slow") == 0

    run(scenario)


# -- connections the instance closed ------------------------------------------------------------


def test_stale_pooled_connections_are_retried(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.short.route()))
        errors = 0
        peers = set()
        for blocking in (False, True):
            for _ in range(3):
                try:
                    peers.add(header(await router.invoke("ep", b"x", []), "x-peer"))
                    if blocking:
                        # The loop sleeps too, so the instance's FIN is not seen before the
                        # next request is written on the pooled connection: the real race.
                        time.sleep(1.5)
                    else:
                        await asyncio.sleep(1.5)
                    peers.add(header(await router.invoke("ep", b"x", []), "x-peer"))
                except Exception:
                    errors += 1
        assert errors == 0
        assert len(peers) >= 6  # uvicorn closed the idle connections; fresh ones were opened

        # Deterministic: the raw server closes a pooled connection when its 2nd request arrives.
        router.publish(single("raw", fleet.main.route(f"raw-{uuid.uuid4().hex[:6]}", port=8081)))
        before = await _count(router, "/drop-second")
        assert (await router.invoke("raw", b"a", [], path="/drop-second")).body == b"raw:a"
        assert (await router.invoke("raw", b"b", [], path="/drop-second")).body == b"raw:b"
        assert await _count(router, "/drop-second") == before + 3  # sent twice, answered once

    run(scenario)


def test_never_retried_after_response_bytes(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("raw", fleet.main.route(port=8081)))
        before = await _count(router, "/partial-second")
        assert (await router.invoke("raw", b"a", [], path="/partial-second")).status == 200
        with pytest.raises(UpstreamBroken):
            await router.invoke("raw", b"b", [], path="/partial-second")
        assert await _count(router, "/partial-second") == before + 2  # no second attempt

        with pytest.raises(UpstreamBroken):
            await router.invoke("raw", b"", [], path="/half")
        with pytest.raises(UpstreamBroken):
            await router.invoke("raw", b"", [], path="/garbage")
        # A fresh connection closed without an answer: the instance is unavailable.
        with pytest.raises(UpstreamUnavailable) as caught:
            await router.invoke("raw", b"", [], path="/silent")
        assert not isinstance(caught.value, UpstreamBroken)
        assert (await router.invoke("raw", b"fine", [])).body == b"raw:fine"
        assert router.outstanding("main") == 0

    run(scenario)


async def _count(router: Router, path: str) -> int:
    counts = json.loads((await router.invoke("raw", b"", [], path="/count")).body)
    return int(counts.get(path, 0))


# -- failures -----------------------------------------------------------------------------------


def test_timeouts(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.main.route()))
        # A pooled connection whose last request had a long timeout, then one with a short one:
        # the short deadline holds on the same connection.
        assert (await router.invoke("ep", b"x", [], timeout=60.0)).status == 200
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await router.invoke("ep", b"x", [("X-Mode", "sleep"), ("X-Sleep", "5")], timeout=0.5)
        assert time.monotonic() - started < 3.0

        # The other way round: an earlier short deadline must not cut a later, longer one short.
        assert (await router.invoke("ep", b"x", [], timeout=0.3)).status == 200
        slow = await router.invoke("ep", b"x", [("X-Mode", "sleep"), ("X-Sleep", "0.8")], timeout=5.0)
        assert slow.status == 200
        assert router.outstanding("main") == 0
        assert (await router.invoke("ep", b"after", [])).body == b"after"

        with pytest.raises(UpstreamTimeout):
            await router.invoke_stream("ep", b"x", [("X-Mode", "sleep"), ("X-Sleep", "5")], timeout=0.5)
        assert router.outstanding("main") == 0

        # Streaming: the timeout also bounds the wait for each next chunk.
        stream = await router.invoke_stream("ep", b"", [("X-Mode", "stream"), ("X-Gap", "5")], timeout=1.0)
        assert await stream.body.__anext__() == b"chunk-0;"
        with pytest.raises(UpstreamTimeout):
            await stream.body.__anext__()
        assert router.outstanding("main") == 0
        assert (await router.invoke("ep", b"again", [])).body == b"again"

    run(scenario)


def test_unreachable_and_killed_instances(fleet: Instances) -> None:
    victim = fleet.fleet.start(f"victim-{uuid.uuid4().hex[:6]}")
    fleet.fleet.wait_ready(victim)

    async def scenario(router: Router) -> None:
        # Nothing listens on 8082 in the main instance's namespace: refused.
        router.publish(single("closed", fleet.main.route("closed-port", port=8082)))
        with pytest.raises(UpstreamUnavailable):
            await router.invoke("closed", b"x", [])

        router.publish(single("ep", victim.route()))
        assert (await router.invoke("ep", b"x", [])).status == 200  # a pooled connection now exists
        in_flight = asyncio.ensure_future(router.invoke("ep", b"x", [("X-Mode", "sleep"), ("X-Sleep", "30")]))
        await asyncio.sleep(0.3)
        await asyncio.get_running_loop().run_in_executor(None, victim.run.kill)
        with pytest.raises(UpstreamUnavailable):
            await in_flight
        for _ in range(2):
            with pytest.raises(UpstreamUnavailable):
                await router.invoke("ep", b"x", [])
        assert router.outstanding(victim.name) == 0

    run(scenario)


# -- route changes ------------------------------------------------------------------------------


def test_publish_swap_while_requests_are_in_flight_loses_none(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        old, new = fleet.main.route("old"), fleet.second.route("new")
        router.publish(single("ep", old))
        slow = [("X-Mode", "sleep"), ("X-Sleep", "0.4")]
        in_flight = [asyncio.ensure_future(router.invoke("ep", b"%d" % i, slow)) for i in range(30)]
        await asyncio.sleep(0.15)
        assert router.outstanding("old") == 30
        await asyncio.get_running_loop().run_in_executor(None, router.publish, single("ep", new))
        after = await router.invoke("ep", b"new", [])
        assert after.instance == "new"
        done = await asyncio.gather(*in_flight)
        assert [r.body for r in done] == [b"%d" % i for i in range(30)]
        assert {r.instance for r in done} == {"old"}
        assert router.outstanding("old") == 0

        # Publishing from another thread over and over while requests flow: no request fails.
        stop = threading.Event()

        def flip() -> None:
            flips = 0
            while not stop.is_set():
                router.publish(single("ep", old if flips % 2 else new))
                flips += 1
                time.sleep(0.001)

        flipper = threading.Thread(target=flip)
        flipper.start()
        try:
            for _ in range(10):
                batch = await asyncio.gather(*(router.invoke("ep", b"x", []) for _ in range(30)))
                assert {r.status for r in batch} == {200}
        finally:
            stop.set()
            flipper.join()
        await asyncio.sleep(0.05)
        assert router.outstanding("old") == router.outstanding("new") == 0

    run(scenario)


# -- streaming ----------------------------------------------------------------------------------


def test_streamed_chunks_arrive_as_they_are_sent(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.main.route()))
        started = time.monotonic()
        stream = await router.invoke_stream(
            "ep", b"", [("X-Mode", "stream"), ("X-Chunks", "4"), ("X-Gap", "0.4")]
        )
        assert stream.status == 200
        assert (stream.variant, stream.instance) == ("v1", "main")
        assert dict(stream.headers)["x-instance"] == "main"
        assert router.outstanding("main") == 1
        arrivals: list[tuple[float, bytes]] = []
        async for chunk in stream.body:
            arrivals.append((time.monotonic() - started, chunk))
        assert b"".join(c for _, c in arrivals) == b"chunk-0;chunk-1;chunk-2;chunk-3;"
        assert len(arrivals) == 4
        assert arrivals[0][0] < 1.0  # the first chunk did not wait for the rest (1.2 s in all)
        gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert all(gap > 0.2 for gap in gaps), gaps
        assert router.outstanding("main") == 0

        # A plain Content-Length response streams too.
        stream = await router.invoke_stream("ep", b"whole", [])
        assert await stream.read() == b"whole"

        # A large body read slowly: reading from the instance pauses and resumes, nothing lost,
        # and the connection is reused afterwards.
        big = bytes(range(256)) * 16_384  # 4 MiB
        stream = await router.invoke_stream("ep", big, [])
        await asyncio.sleep(0.5)  # let the instance get well ahead of the reader
        received = bytearray()
        async for chunk in stream.body:
            received += chunk
            await asyncio.sleep(0)
        assert bytes(received) == big
        assert header(await router.invoke("ep", b"x", []), "x-peer") == dict(stream.headers)["x-peer"]

        # Stopping early: aclose frees the instance's slot and the connection is not reused.
        async with await router.invoke_stream("ep", b"", [("X-Mode", "stream"), ("X-Gap", "0.3")]) as stream:
            assert await stream.body.__anext__() == b"chunk-0;"
        assert router.outstanding("main") == 0
        assert (await router.invoke("ep", b"next", [])).body == b"next"

    run(scenario)


def test_streamed_chunks_as_event_stream_decode_with_botocore(fleet: Instances) -> None:
    async def scenario(router: Router) -> list[bytes]:
        router.publish(single("ep", fleet.main.route()))
        stream = await router.invoke_stream(
            "ep", b"", [("X-Mode", "stream"), ("X-Chunks", "5"), ("X-Gap", "0.01")]
        )
        return [eventstream.payload_part(chunk) async for chunk in stream.body]

    frames = run(scenario)
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(frames) + eventstream.model_stream_error("it broke", "ModelError"))
    messages = list(buffer)
    parts = [m.payload for m in messages if m.headers[":message-type"] == "event"]
    assert b"".join(parts) == b"chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;"
    assert all(m.headers[":event-type"] == "PayloadPart" for m in messages[:-1])
    error: Any = messages[-1]
    assert error.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(error.payload) == {"Message": "it broke", "ErrorCode": "ModelError"}


def test_closed_router_routes_nothing(fleet: Instances) -> None:
    async def scenario(router: Router) -> None:
        router.publish(single("ep", fleet.main.route()))
        assert (await router.invoke("ep", b"x", [])).status == 200
        await router.close()
        with pytest.raises(NoSuchRoute):
            await router.invoke("ep", b"x", [])
        with pytest.raises(RuntimeError):
            router.publish(single("ep", fleet.main.route()))

    run(scenario)
