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
  - ``homeport``: the real thing, end to end. A ``homeport server`` (fresh data dir under
    ``bench/.work/``) with the model image registered by ``homeport image add --requirements``
    (uvicorn, uvloop, httptools and Starlette pinned to this venv's versions; the venv is built
    once into ``$HOMEPORT_VENV_CACHE``, default ``~/.cache/homeport-test-venvs``), a model, an
    endpoint config and an endpoint created through boto3 and awaited to InService; wrk posts
    to ``http://127.0.0.1:P/endpoints/bench/invocations``, i.e. through the server's
    InvokeEndpoint edge (``RuntimeEdge.wrap``) and its router, in the one server process that
    also serves the control plane. With this front the *server's* instance is the instance every
    path uses (found by an environment marker in ``/proc/*/environ``); without it the bench
    starts its own ``ProcessRuntime`` sandbox;

* the direct path: wrk run *inside* the instance's network namespace
  (``nsenter --net=/proc/PID/ns/net``) against 127.0.0.1:8080, the same instance process.

Each round measures every path at 16 connections (throughput) and at 1 connection (p50
latency), the order rotating from round to round (c1 in the reverse order of c16) so drift on
a shared machine hits every path alike. It prints, per front, the median and range of the
per-round ratios front/direct for throughput and of the per-round added p50 latency.

    apt-get install -y wrk          # wrk 4.x; nsenter comes with util-linux
    .venv/bin/python bench/router_overhead.py [--rounds 6] [--duration 4] [--front asgi,starlette,homeport]

Needs root (namespaces). Everything started here is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import re
import resource
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

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from endpoint_start import start_server
from training_start import ROLE, WORK, homeport, stop_server

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

# The image's venv for the homeport front: the serving stack pinned to this venv's versions, so
# the instance runs the same code as the bench's own sandbox does with ``venv=sys.prefix``.
SERVING_STACK = ("uvicorn", "uvloop", "httptools", "starlette")
MARKER_VAR = "HOMEPORT_BENCH_ROUTER"
FRONTS = ("starlette", "asgi", "raw", "homeport")

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
    requests: int = 0
    cpu_us: dict[str, float] | None = None  # CPU µs per request of wrk, the front and the instance


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads) so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def netns_pids(pid: int) -> list[int]:
    """Every process in the network namespace of ``pid`` (the instance: its PID 1 and its server)."""
    inode = os.stat(f"/proc/{pid}/ns/net").st_ino
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino == inode:
                    pids.append(int(entry.name))
    return pids


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
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Sample(rps=rps, p50_ms=float(value) * _UNITS[unit], requests=requests)


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


def requirements() -> str:
    return "".join(f"{name}=={importlib.metadata.version(name)}\n" for name in SERVING_STACK)


def marked_pids(marker: str) -> list[int]:
    """Pids of processes whose environment holds ``MARKER_VAR=marker`` (the server's instance)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


@dataclass
class HomeportSide:
    """A real ``homeport server`` serving one endpoint, ``bench``, with one instance."""

    server: subprocess.Popen[bytes]
    port: int
    sm: Any
    marker: str
    instance_pid: int

    @classmethod
    def start(cls, work: Path, image_root: Path) -> HomeportSide:
        data_dir = work / "data"
        data_dir.mkdir()
        (work / "requirements.txt").write_text(requirements())
        port = free_port()
        server = start_server(data_dir, port, work / "server.log")
        try:
            print("homeport front: registering the image (builds its venv once) ...", flush=True)
            homeport(
                data_dir, "image", "add", "bench-model", str(image_root), "--requirements",
                str(work / "requirements.txt"),
            )  # fmt: skip
            sm = boto3.client(
                "sagemaker",
                endpoint_url=f"http://127.0.0.1:{port}",
                region_name="us-east-1",
                aws_access_key_id="homeport",
                aws_secret_access_key="homeport",
                config=Config(retries={"max_attempts": 1}),
            )
            marker = f"{os.getpid()}-{time.time_ns()}"
            sm.create_model(
                ModelName="bench",
                ExecutionRoleArn=ROLE,
                PrimaryContainer={"Image": "bench-model:latest", "Environment": {MARKER_VAR: marker}},
            )
            variant = {
                "VariantName": "AllTraffic",
                "ModelName": "bench",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
            sm.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[variant])
            sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
            deadline = time.monotonic() + 120
            while (desc := sm.describe_endpoint(EndpointName="bench"))["EndpointStatus"] != "InService":
                if desc["EndpointStatus"] != "Creating" or time.monotonic() > deadline:
                    raise RuntimeError(f"endpoint {desc['EndpointStatus']}: {desc.get('FailureReason')}")
                time.sleep(0.05)
            own = os.stat("/proc/self/ns/net").st_ino
            pids = [p for p in marked_pids(marker) if os.stat(f"/proc/{p}/ns/net").st_ino != own]
            if not pids:
                raise RuntimeError("the endpoint's instance process was not found")
            return cls(server, port, sm, marker, min(pids))
        except BaseException:
            stop_server(server)
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/endpoints/bench/invocations"

    def stop(self) -> None:
        """DeleteEndpoint (awaited until gone), stop the server, kill anything of the instance left."""
        try:
            self.sm.delete_endpoint(EndpointName="bench")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    self.sm.describe_endpoint(EndpointName="bench")
                except ClientError:
                    break
                time.sleep(0.05)
        finally:
            stop_server(self.server)
            for pid in marked_pids(self.marker):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


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
        "under uvicorn), raw (an asyncio Protocol server, no ASGI), homeport (the real server, an "
        "endpoint created through boto3)",
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
    if not fronts or not set(fronts) <= set(FRONTS):
        sys.exit(f"--front takes {', '.join(FRONTS)}")
    for tool in ("wrk", "nsenter"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt-get install -y wrk util-linux)")

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    if "homeport" in fronts:  # the server's data dir lives in the git-ignored bench/.work
        WORK.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="router-overhead-", dir=WORK))
    else:
        work = Path(tempfile.mkdtemp(prefix="homeport-bench-router-"))
    instance: ProcessRun | None = None
    hp: HomeportSide | None = None
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
        urls: dict[str, str] = {}
        front_pids: dict[str, list[int]] = {"direct": []}
        if "homeport" in fronts:
            hp = HomeportSide.start(work, image_root)
            instance_pid = hp.instance_pid
            urls["homeport"] = hp.url
            front_pids["homeport"] = [hp.server.pid]
            wait_front(hp.url, hp.server)
        else:
            instance = ProcessRuntime().start(spec)
            wait_instance(instance)
            instance_pid = instance.pid

        # The fronts import homeport as this process does (a PYTHONPATH given to the bench first).
        root = str(Path(__file__).resolve().parent.parent)
        pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), root) if p)
        for kind in fronts:
            if kind == "homeport":
                continue
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve-front", kind, str(port), str(instance_pid)],
                env={**os.environ, "PYTHONPATH": pythonpath},
            )
            servers.append(server)
            front_pids[kind] = [server.pid]
            urls[kind] = f"http://127.0.0.1:{port}/endpoints/bench/invocations"
            wait_front(urls[kind], server)

        direct_prefix = ["nsenter", f"--net=/proc/{instance_pid}/ns/net"]
        direct_url = "http://127.0.0.1:8080/invocations"

        instance_pids = netns_pids(instance_pid)

        def measure(path: str, connections: int, duration: int) -> Sample:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk's (and nsenter's) CPU
            front0, inst0 = cpu_seconds(front_pids[path]), cpu_seconds(instance_pids)
            if path == "direct":
                sample = run_wrk(direct_prefix, direct_url, script, connections, duration)
            else:
                sample = run_wrk([], urls[path], script, connections, duration)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            wrk = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            per = 1e6 / max(1, sample.requests)
            sample.cpu_us = {
                "wrk": wrk * per,
                "front": (cpu_seconds(front_pids[path]) - front0) * per,
                "instance": (cpu_seconds(instance_pids) - inst0) * per,
            }
            return sample

        paths = ["direct", *fronts]
        for path in paths:  # warm-up: imports, pooled connections, CPU caches
            measure(path, 16, 2)
            measure(path, 1, 1)

        ratios: dict[str, list[float]] = {kind: [] for kind in fronts}
        added: dict[str, list[float]] = {kind: [] for kind in fronts}
        cpu16: dict[str, list[dict[str, float]]] = {path: [] for path in paths}
        for round_ in range(args.rounds):
            # Rotate the order each round, and run c1 in the reverse order of c16.
            order = paths[round_ % len(paths) :] + paths[: round_ % len(paths)]
            c16 = {path: measure(path, 16, args.duration) for path in order}
            c1 = {path: measure(path, 1, args.duration) for path in reversed(order)}
            for path in paths:
                cpu16[path].append(c16[path].cpu_us or {})
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
        print("CPU µs per request at c16 (median over rounds; /proc utime+stime, wrk from rusage):")
        cores = os.cpu_count() or 1
        print(f"  {'path':<10}{'wrk':>8}{'front':>8}{'instance':>10}{'total':>8}   {cores} cores / total")
        for path in paths:
            med = {k: statistics.median(r[k] for r in cpu16[path]) for k in ("wrk", "front", "instance")}
            total = sum(med.values())
            print(
                f"  {path:<10}{med['wrk']:>8.1f}{med['front']:>8.1f}{med['instance']:>10.1f}{total:>8.1f}"
                f"   {cores * 1e6 / total:,.0f} rps"
            )
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
        if hp is not None:
            hp.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
