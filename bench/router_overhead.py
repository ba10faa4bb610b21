"""What the invocation router costs: wrk through a Homeport-like front vs straight to the instance.

Setup:

* one serving instance: a ``ProcessRuntime`` sandbox with a private network namespace running
  uvicorn + Starlette on 0.0.0.0:8080 there, with a tiny model-like handler (parse 4 CSV
  floats, answer an iris label);
* the fronts, each its own process on 127.0.0.1, each calling ``Router.invoke`` for
  ``POST /endpoints/{name}/invocations``:

  - ``starlette``: a Starlette app served by uvicorn the way ``homeport server`` runs (uvloop +
    httptools, no access log), doing what the API layer does: read the body, invoke, return a
    Response with the instance's content type and the invoked variant;
  - ``asgi``: the same as a bare ASGI callable under uvicorn (no Starlette layers);
  - ``raw``: no ASGI server at all, an asyncio Protocol with httptools' request parser (what a
    dedicated data-plane listener would cost);

* the direct path: wrk run *inside* the instance's network namespace
  (``nsenter --net=/proc/PID/ns/net``) against 127.0.0.1:8080, the same instance process.

Each round measures every path at 16 connections (throughput) and at 1 connection (p50
latency), the order rotating from round to round (c1 in the reverse order of c16) so drift on
a shared machine hits every path alike. It prints, per front, the median and range of the
per-round ratios front/direct for throughput and of the per-round added p50 latency.

    apt-get install -y wrk          # wrk 4.x; nsenter comes with util-linux
    .venv/bin/python bench/router_overhead.py [--rounds 6] [--duration 4] [--front starlette,asgi,raw]

Needs root (namespaces). Everything started here is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.hosting.netns import connect_in_netns
from homeport.images.model import LocalImage
from homeport.runtimes.base import RunSpec
from homeport.runtimes.process import ProcessRun, ProcessRuntime

BODY = "5.1,3.5,1.4,0.2"

MODEL_APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def ping(request):
    return Response(b"")


async def invocations(request):
    body = await request.body()
    x = [float(v) for v in body.decode().split(",")]
    label = "setosa" if x[2] < 2.5 else ("versicolor" if x[3] < 1.75 else "virginica")
    return Response(label, media_type="text/plain")


app = Starlette(routes=[Route("/ping", ping), Route("/invocations", invocations, methods=["POST"])])
"""

SERVE = """#!/bin/sh
exec uvicorn app:app --host 0.0.0.0 --port 8080 --no-access-log --log-level warning
"""

POST_LUA = f"""
wrk.method = "POST"
wrk.body = "{BODY}"
wrk.headers["Content-Type"] = "text/csv"
wrk.headers["Accept"] = "text/plain"
"""


# -- the fronts (each in its own process: ``router_overhead.py --serve-front KIND PORT NETNS_PID``) --


def serve_front(kind: str, port: int, netns_pid: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from homeport.hosting.router import Router
    from homeport.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute

    router = Router()
    forwarded = ("content-type", "accept")

    def publish() -> None:
        instance = InstanceRoute(key="bench/v1/1", netns_pid=netns_pid)
        router.publish(EndpointRoute("bench", (VariantRoute("v1", 1.0, (instance,)),)))

    # What the API layer does (homeport/api/runtime_api.py): Starlette Request in, Response out.
    async def invoke(request: Request) -> Response:
        body = await request.body()
        headers = [(k, v) for k, v in request.headers.items() if k in forwarded]
        result = await router.invoke(request.path_params["name"], body, headers)
        content_type = next(
            (v for k, v in result.headers if k.lower() == "content-type"), "application/octet-stream"
        )
        return Response(
            result.body,
            status_code=result.status,
            media_type=content_type,
            headers={"x-Amzn-Invoked-Production-Variant": result.variant},
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        publish()
        yield
        await router.close()

    starlette_app = Starlette(
        routes=[Route("/endpoints/{name}/invocations", invoke, methods=["POST"])], lifespan=lifespan
    )

    # The same as a bare ASGI callable: what the invocation path costs without Starlette's
    # Request/Response/routing layers.
    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    publish()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await router.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        parts = scope["path"].split("/")
        if (
            scope["method"] != "POST"
            or len(parts) != 4
            or parts[1] != "endpoints"
            or parts[3] != "invocations"
        ):
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k in (b"content-type", b"accept")
        ]
        result = await router.invoke(parts[2], b"".join(chunks), headers)
        content_type = next(
            (v for k, v in result.headers if k.lower() == "content-type"), "application/octet-stream"
        )
        out = [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", b"%d" % len(result.body)),
            (b"x-amzn-invoked-production-variant", result.variant.encode()),
        ]
        await send({"type": "http.response.start", "status": result.status, "headers": out})
        await send({"type": "http.response.body", "body": result.body})

    if kind == "raw":
        import uvloop

        with contextlib.suppress(KeyboardInterrupt):  # SIGINT is how the bench stops it
            uvloop.run(serve_raw_front(router, publish, port))
        return
    app = starlette_app if kind == "starlette" else asgi_app
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def serve_raw_front(router: Any, publish: Any, port: int) -> None:
    """No ASGI server at all: an asyncio Protocol parsing requests with httptools, calling the
    router, writing the response. What a dedicated data-plane listener would cost."""
    import httptools

    loop = asyncio.get_running_loop()
    publish()

    class Front(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.headers: list[tuple[str, str]] = []
            self.body: list[bytes] = []
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() in (b"content-type", b"accept"):
                self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            url, headers, body = self.url, self.headers, b"".join(self.body)
            self.url, self.headers, self.body = b"", [], []
            loop.create_task(self.handle(url, headers, body, self.parser.should_keep_alive()))

        async def handle(self, url: bytes, headers: list[tuple[str, str]], body: bytes, keep: bool) -> None:
            parts = url.split(b"/")
            if len(parts) != 4 or parts[1] != b"endpoints" or parts[3] != b"invocations":
                self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            result = await router.invoke(parts[2].decode(), body, headers)
            content_type = next(
                (v for k, v in result.headers if k.lower() == "content-type"), "application/octet-stream"
            )
            if self.transport.is_closing():  # wrk hung up at the end of its run
                return
            self.transport.write(
                f"HTTP/1.1 {result.status} OK\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(result.body)}\r\n"
                f"x-Amzn-Invoked-Production-Variant: {result.variant}\r\n\r\n".encode("latin-1")
                + result.body
            )
            if not keep:
                self.transport.close()

    server = await loop.create_server(Front, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Sample:
    rps: float
    p50_ms: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(prefix: list[str], url: str, script: Path, connections: int, duration: int) -> Sample:
    command = [
        *prefix,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",  # wrk takes whole seconds
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors during the run:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return Sample(rps=rps, p50_ms=float(value) * _UNITS[unit])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_instance(run: ProcessRun, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.wait(0) is not None:
            raise RuntimeError(f"the instance exited: {run.output.read().decode(errors='replace')}")
        try:
            connect_in_netns(run.pid, 8080, 1.0).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the instance never listened on 8080")


def wait_front(url: str, front: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if front.poll() is not None:
            raise RuntimeError(f"the front exited with {front.returncode}")
        try:
            request = urllib.request.Request(url, data=BODY.encode(), headers={"Content-Type": "text/csv"})
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.read() == b"setosa":
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError("the front never answered")


def summary(values: list[float]) -> str:
    return f"median={statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument(
        "--front",
        default="starlette,asgi,raw",
        help="comma-separated fronts to measure: starlette (as the API layer), asgi (a bare ASGI app "
        "under uvicorn), raw (an asyncio Protocol server, no ASGI)",
    )
    parser.add_argument(
        "--serve-front", nargs=3, metavar=("KIND", "PORT", "NETNS_PID"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve_front:
        kind, port, pid = args.serve_front
        serve_front(kind, int(port), int(pid))
        return
    fronts = [f.strip() for f in args.front.split(",") if f.strip()]
    if not fronts or not set(fronts) <= {"starlette", "asgi", "raw"}:
        sys.exit("--front takes starlette, asgi and/or raw")
    for tool in ("wrk", "nsenter"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt-get install -y wrk util-linux)")

    work = Path(tempfile.mkdtemp(prefix="homeport-bench-router-"))
    instance: ProcessRun | None = None
    servers: list[subprocess.Popen[bytes]] = []
    try:
        image_root = work / "image"
        image_root.mkdir()
        (image_root / "app.py").write_text(MODEL_APP)
        (image_root / "serve").write_text(SERVE)
        (image_root / "serve").chmod(0o755)
        script = work / "post.lua"
        script.write_text(POST_LUA)
        image = LocalImage(
            name="bench-model", tag="latest", root=image_root, at="/opt/program", venv=Path(sys.prefix)
        )
        spec = RunSpec(
            name="bench/router-overhead",
            image=image,
            argv=["serve"],
            env={},
            mounts=[],
            network="none",
            scratch=work / "scratch",
        )
        instance = ProcessRuntime().start(spec)
        wait_instance(instance)

        urls: dict[str, str] = {}
        for kind in fronts:
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve-front", kind, str(port), str(instance.pid)],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            )
            servers.append(server)
            urls[kind] = f"http://127.0.0.1:{port}/endpoints/bench/invocations"
            wait_front(urls[kind], server)

        direct_prefix = ["nsenter", f"--net=/proc/{instance.pid}/ns/net"]
        direct_url = "http://127.0.0.1:8080/invocations"

        def measure(path: str, connections: int, duration: int) -> Sample:
            if path == "direct":
                return run_wrk(direct_prefix, direct_url, script, connections, duration)
            return run_wrk([], urls[path], script, connections, duration)

        paths = ["direct", *fronts]
        for path in paths:  # warm-up: imports, pooled connections, CPU caches
            measure(path, 16, 2)
            measure(path, 1, 1)

        ratios: dict[str, list[float]] = {kind: [] for kind in fronts}
        added: dict[str, list[float]] = {kind: [] for kind in fronts}
        for round_ in range(args.rounds):
            # Rotate the order each round, and run c1 in the reverse order of c16.
            order = paths[round_ % len(paths) :] + paths[: round_ % len(paths)]
            c16 = {path: measure(path, 16, args.duration) for path in order}
            c1 = {path: measure(path, 1, args.duration) for path in reversed(order)}
            direct16, direct1 = c16["direct"], c1["direct"]
            line = [f"round {round_ + 1}: direct c16 {direct16.rps:,.0f} rps, c1 p50 {direct1.p50_ms:.3f} ms"]
            for kind in fronts:
                ratio = c16[kind].rps / c16["direct"].rps
                extra = c1[kind].p50_ms - c1["direct"].p50_ms
                ratios[kind].append(ratio)
                added[kind].append(extra)
                line.append(
                    f"{kind} c16 {c16[kind].rps:,.0f} rps (x{ratio:.3f}), c1 p50 {c1[kind].p50_ms:.3f} ms "
                    f"(+{extra:.3f})"
                )
            print("; ".join(line), flush=True)
        for kind in fronts:
            print(f"RATIO router/direct throughput c16 {summary(ratios[kind])} (front: {kind})")
            print(f"ADDED p50 c1 ms {summary(added[kind])} (front: {kind})")
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        if instance is not None:
            instance.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
