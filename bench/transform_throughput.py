"""Batch transform throughput vs the same container called directly, and the server's memory on 1 GB.

Setup: a ``homeport server`` (fresh data dir under ``bench/.work/``) with one image registered
by ``homeport image add --requirements`` (uvicorn, uvloop, httptools and Starlette pinned to this
venv's versions; the venv is built once into ``$HOMEPORT_VENV_CACHE``, default
``~/.cache/homeport-test-venvs``). Its ``serve`` runs a small Starlette app under uvicorn on
0.0.0.0:8080 whose ``POST /invocations`` answers one line per input CSV line (the sum of its
fields) and prints ``REQ <start> <end> <lines>`` (its own ``time.time()``, µs) for every request;
``app.py`` prints ``STARTED <t>`` when imported and ``LIFESPAN <t>`` at its lifespan start-up
(uvicorn binds its socket right after).

**1. Records/s** (``--objects`` CSV objects × ``--lines`` lines, 4 fields a line, put in with
``homeport cp``). Each round runs both sides, the order alternating (ABBA), so drift on a shared
machine hits both alike:

* ``job``: CreateTransformJob through boto3 (SplitType Line, MultiRecord, MaxPayloadInMB 1,
  MaxConcurrentTransforms 2, InstanceCount 1, AssembleWith Line), ``t0`` just before the call,
  ``describe_transform_job`` every 50 ms until Completed. records/s = lines / (t1 − t0): it
  includes starting the instance. The container's REQ lines are read back from the job's log
  stream (``DATA_DIR/logs/TransformJobs/transform-JOB/...jsonl``) afterwards;
* ``direct``: the same image (the registered one, same venv) started once by the bench itself
  with ``ProcessRuntime`` in a private network namespace (``network="none"``), reached with
  :func:`homeport.hosting.netns.connect_in_netns` as the server's router does. Per round: read
  each input file from disk, cut it into the batches the job sends (the longest run of whole
  lines ≤ 1 MiB, ``bytes.rfind``), POST them with 2 keep-alive ``http.client`` connections (two
  threads, a window of 2 in flight, answers written in order to an output file, a ``\\n`` after
  each as AssembleWith Line does). records/s = lines / wall time.

Ratios, per round, then the median [min–max] over rounds:

* **end to end**: job records/s ÷ direct records/s (the job pays its instance start-up);
* **excluding start-up**: records / (last request's end − first request's start), both read
  from the container's own REQ timestamps, job ÷ direct: the steady state, where only the
  records' path through Homeport (split, pack, router, ordered write) differs.

Also printed: the instance start (create → app imported, → app started, → first request); the
share of the first → last window in which the container had no request (waiting for its
client); CPU µs per record of the ``homeport server`` process during the job (``/proc/PID/stat``;
it also answers the 50 ms DescribeTransformJob polls) and of the bench process during the direct
run; and, in round 1, a check that both sides sent the same number of requests with the same
line counts and wrote the same output bytes. ``BENCH_SPANS=1`` prints every request's offset and
duration (ms) per round.

**2. Memory**: one ``--mem-mb`` (default 1024 MiB) object of whole lines (16 fields a line), put
in with ``homeport cp`` (the local copy is deleted right after), then a job with SplitType Line,
MultiRecord, MaxPayloadInMB 6. The server PID's ``VmRSS`` is sampled from ``/proc/PID/status``
every 100 ms from just before CreateTransformJob to Completed; ``VmHWM`` is reset just before
(``echo 5 > /proc/PID/clear_refs``) and read after, so a peak between samples is seen too.
Prints RSS before, peak, peak − before, and that as a fraction of the input. If the disk has
less than 4× the object free, 500 MiB is used instead (and said).

    .venv/bin/python bench/transform_throughput.py [--rounds 5] [--objects 4] [--lines 50000]
        [--mem-mb 1024] [--skip-memory] [--skip-throughput]

Needs root (namespaces). Everything started here is stopped by PID; the work folder is removed.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import http.client
import importlib.metadata
import json
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from endpoint_start import start_server
from training_start import ROLE, WORK, free_port, homeport, stop_server

from homeport.config import Settings
from homeport.hosting.netns import connect_in_netns
from homeport.images.registry import ImageRegistry
from homeport.images.venvs import VenvCache
from homeport.runtimes.base import RunSpec
from homeport.runtimes.process import ProcessRun, ProcessRuntime
from homeport.storage.base import S3Uri
from homeport.storage.factory import open_object_store

IMAGE = "bench-transform"
MODEL = "bench-transform"
MIB = 1024 * 1024
PAYLOAD_MB = 1
CONCURRENCY = 2
MEM_PAYLOAD_MB = 6
POLL_S = 0.05
TARGET_RATIO = 0.8
SERVING_STACK = ("uvicorn", "uvloop", "httptools", "starlette")

MODEL_APP = """
import time

print(f"STARTED {time.time():.6f}", flush=True)

from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app):
    print(f"LIFESPAN {time.time():.6f}", flush=True)  # uvicorn binds its socket right after
    yield


async def ping(request):
    return Response(b"")


async def invocations(request):
    t0 = time.time()
    body = await request.body()
    lines = body.split(b"\\n")
    if lines and not lines[-1]:
        lines.pop()
    out = b"\\n".join([b"%g" % sum(map(float, line.split(b","))) for line in lines])
    print(f"REQ {t0:.6f} {time.time():.6f} {len(lines)}", flush=True)
    return Response(out, media_type="text/csv")


app = Starlette(
    routes=[Route("/ping", ping), Route("/invocations", invocations, methods=["POST"])], lifespan=lifespan
)
"""

SERVE = """#!/bin/sh
exec uvicorn app:app --host 0.0.0.0 --port 8080 --no-access-log --log-level warning
"""


def requirements() -> str:
    return "".join(f"{name}=={importlib.metadata.version(name)}\n" for name in SERVING_STACK)


# -- data ---------------------------------------------------------------------------------------


def random_lines(rng: random.Random, count: int, fields: int) -> bytes:
    return b"".join(
        (",".join(f"{rng.random() * 100:.3f}" for _ in range(fields)) + "\n").encode() for _ in range(count)
    )


def write_big(path: Path, size: int, fields: int) -> int:
    """A file of whole lines of about ``size`` bytes (a 1 MiB block of random lines repeated)."""
    rng = random.Random(7)
    block = random_lines(rng, 1, fields)
    while len(block) < MIB:
        block += random_lines(rng, 2000, fields)
    block = block[: block.rfind(b"\n", 0, MIB) + 1]
    lines = 0
    with path.open("wb") as f:
        written = 0
        while written + len(block) <= size:
            f.write(block)
            written += len(block)
            lines += block.count(b"\n")
    return lines


# -- the container's own timestamps -----------------------------------------------------------


@dataclass
class Requests:
    started: float | None = None  # app.py imported
    lifespan: float | None = None  # the app's lifespan startup (uvicorn listens right after)
    spans: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, lines)

    def feed(self, message: str) -> None:
        parts = message.split()
        if len(parts) == 2 and parts[0] == "STARTED":
            self.started = float(parts[1])
        elif len(parts) == 2 and parts[0] == "LIFESPAN":
            self.lifespan = float(parts[1])
        elif len(parts) == 4 and parts[0] == "REQ":
            self.spans.append((float(parts[1]), float(parts[2]), int(parts[3])))

    @property
    def first(self) -> float:
        return min(s[0] for s in self.spans)

    @property
    def last(self) -> float:
        return max(s[1] for s in self.spans)

    @property
    def window(self) -> float:
        return self.last - self.first

    @property
    def idle(self) -> float:
        """Share of the first → last window when no request was in the handler: the container
        waiting for its client."""
        busy, end = 0.0, None
        for a, b, _ in sorted(self.spans):
            if end is None or a > end:
                busy += b - a
                end = b
            elif b > end:
                busy += b - end
                end = b
        return 1.0 - busy / self.window if self.window > 0 else 0.0

    def shape(self) -> list[int]:
        return sorted(s[2] for s in self.spans)


def job_requests(data_dir: Path, job: str) -> Requests:
    """STARTED/REQ lines of the job's instance log stream(s) (JSON lines ``{"t", "m"}``)."""
    found = Requests()
    root = data_dir / "logs" / "TransformJobs"
    for path in root.rglob("*.jsonl"):
        if f"transform-{job}" not in str(path.relative_to(root)):
            continue
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                found.feed(str(json.loads(line)["m"]))
    return found


# -- the direct side ----------------------------------------------------------------------------


class DirectInstance:
    """The same image, started by the bench in a private network namespace; its output drained."""

    def __init__(self, run: ProcessRun) -> None:
        self.run = run
        self.lock = threading.Lock()
        self.requests = Requests()
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        for raw in iter(self.run.output.readline, b""):
            text = raw.decode(errors="replace").strip()
            with self.lock:
                self.tail.append(text)
                self.requests.feed(text)

    def take(self) -> Requests:
        """The REQ lines printed since the last take (waits for the last one to be read)."""
        time.sleep(0.05)
        with self.lock:
            got, self.requests = self.requests, Requests()
        return got

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run.wait(0) is not None:
                raise RuntimeError("the direct instance exited:\n" + "\n".join(self.tail))
            try:
                conn = self.connection()
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the direct instance never answered /ping")

    def connection(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("localhost", 8080, timeout=600)
        conn.sock = connect_in_netns(self.run.pid, 8080, timeout=5.0)
        return conn


def file_batches(path: Path, limit: int) -> Any:
    """The job's MultiRecord batches of one file: the longest run of whole lines ≤ ``limit``."""
    with path.open("rb") as f:
        buf = b""
        while True:
            data = f.read(limit - len(buf))
            buf += data
            if not data or len(buf) < limit:  # the end of the file: the rest in one batch
                if buf:
                    yield buf if buf.endswith(b"\n") else buf + b"\n"
                return
            cut = buf.rfind(b"\n", 0, limit) + 1
            if cut == 0:
                raise ValueError(f"a line of {path} is longer than {limit} bytes")
            yield buf[:cut]
            buf = buf[cut:]


def run_direct(instance: DirectInstance, inputs: list[Path], out_dir: Path, limit: int) -> float:
    """Seconds to read, POST (2 connections, window 2, in order) and write every input."""
    local = threading.local()

    def post(body: bytes) -> bytes:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = instance.connection()
        conn.request("POST", "/invocations", body, {"Content-Type": "text/csv", "Accept": "text/csv"})
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"direct: {response.status} {answer[:200]!r}")
        return answer

    conns: list[http.client.HTTPConnection] = []

    def init() -> None:
        local.conn = instance.connection()
        conns.append(local.conn)

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY, initializer=init) as pool:
        # Open both connections before the clock starts (the job's router pool keeps them too).
        list(pool.map(lambda _: None, range(CONCURRENCY)))
        t0 = time.perf_counter()
        in_flight: collections.deque[tuple[Any, concurrent.futures.Future[bytes]]] = collections.deque()
        outs = []
        for path in inputs:
            out = (out_dir / (path.name + ".out")).open("wb")
            outs.append(out)
            for batch in file_batches(path, limit):
                while len(in_flight) >= CONCURRENCY:
                    fh, future = in_flight.popleft()
                    fh.write(future.result() + b"\n")
                in_flight.append((out, pool.submit(post, batch)))
        while in_flight:
            fh, future = in_flight.popleft()
            fh.write(future.result() + b"\n")
        for out in outs:
            out.close()
        elapsed = time.perf_counter() - t0
    for conn in conns:
        conn.close()
    return elapsed


# -- the Homeport side --------------------------------------------------------------------------


def job_request(name: str, in_uri: str, out_uri: str, payload_mb: int) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": MODEL,
        "MaxConcurrentTransforms": CONCURRENCY,
        "MaxPayloadInMB": payload_mb,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": in_uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": out_uri, "AssembleWith": "Line", "Accept": "text/csv"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


@dataclass
class JobRun:
    name: str
    seconds: float  # create → Completed seen (polled every 50 ms)
    t0: float  # time.time() just before create_transform_job
    desc: dict[str, Any]


def run_job(sm: Any, request: dict[str, Any]) -> JobRun:
    t0 = time.time()
    p0 = time.perf_counter()
    sm.create_transform_job(**request)
    while True:
        desc = sm.describe_transform_job(TransformJobName=request["TransformJobName"])
        status = desc["TransformJobStatus"]
        if status == "Completed":
            return JobRun(request["TransformJobName"], time.perf_counter() - p0, t0, desc)
        if status in ("Failed", "Stopped"):
            raise RuntimeError(f"job {request['TransformJobName']} {status}: {desc.get('FailureReason')}")
        time.sleep(POLL_S)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


# -- report -------------------------------------------------------------------------------------


def summary(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def throughput(
    args: argparse.Namespace, work: Path, data_dir: Path, sm: Any, direct: DirectInstance, server_pid: int
) -> None:
    store = open_object_store("local", Settings(data_dir=data_dir).objects_dir, None, "us-east-1")
    inputs = []
    rng = random.Random(1)
    for i in range(args.objects):
        path = work / "in" / f"part-{i}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(random_lines(rng, args.lines, 4))
        inputs.append(path)
    total_lines = args.objects * args.lines
    size = sum(p.stat().st_size for p in inputs)
    homeport(data_dir, "cp", "--recursive", str(work / "in"), "s3://bench-in/tput/")
    print(
        f"records/s: {args.objects} objects × {args.lines:,} lines = {total_lines:,} lines, "
        f"{size / MIB:.1f} MiB; MaxPayloadInMB {PAYLOAD_MB}, MaxConcurrentTransforms {CONCURRENCY}",
        flush=True,
    )
    limit = PAYLOAD_MB * MIB

    def job_side(name: str) -> tuple[JobRun, Requests, float]:
        cpu0 = cpu_seconds(server_pid)
        run = run_job(sm, job_request(name, "s3://bench-in/tput/", f"s3://bench-out/{name}/", PAYLOAD_MB))
        return run, job_requests(data_dir, name), cpu_seconds(server_pid) - cpu0

    def direct_side(out_dir: Path) -> tuple[float, Requests, float]:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        direct.take()
        cpu0 = time.process_time()  # the bench process: every thread
        seconds = run_direct(direct, inputs, out_dir, limit)
        return seconds, direct.take(), time.process_time() - cpu0

    # Warm-up: one of each (page cache, the router's pool, the direct instance's first requests).
    job_side("tt-warmup")
    direct_side(work / "direct-out")

    e2e: list[float] = []
    steady: list[float] = []
    job_rps: list[float] = []
    direct_rps: list[float] = []
    job_window_rps: list[float] = []
    direct_window_rps: list[float] = []
    to_import: list[float] = []
    to_first: list[float] = []
    to_lifespan: list[float] = []
    tails: list[float] = []
    job_s: list[float] = []
    job_cpu: list[float] = []
    direct_cpu: list[float] = []
    job_idle: list[float] = []
    direct_idle: list[float] = []
    for n in range(args.rounds):
        name = f"tt-r{n}"
        order = ("job", "direct") if n % 2 == 0 else ("direct", "job")
        for side in order:
            if side == "job":
                run, jreq, jcpu = job_side(name)
            else:
                dsec, dreq, dcpu = direct_side(work / "direct-out")
        if n == 0:  # same requests, same answers
            if jreq.shape() != dreq.shape():
                raise RuntimeError(f"different batches: job {jreq.shape()} direct {dreq.shape()}")
            for path in inputs:
                job_out = store.open_read(S3Uri.parse(f"s3://bench-out/{name}/{path.name}.out")).read()
                if job_out != (work / "direct-out" / (path.name + ".out")).read_bytes():
                    raise RuntimeError(f"outputs differ for {path.name}")
            print(
                f"check: {len(jreq.spans)} requests, same line counts and outputs on both sides", flush=True
            )
        if sum(s[2] for s in jreq.spans) != total_lines or sum(s[2] for s in dreq.spans) != total_lines:
            raise RuntimeError("a side did not send every line")
        jr, dr = total_lines / run.seconds, total_lines / dsec
        jw, dw = total_lines / jreq.window, total_lines / dreq.window
        job_s.append(run.seconds)
        job_cpu.append(jcpu / total_lines * 1e6)
        direct_cpu.append(dcpu / total_lines * 1e6)
        job_idle.append(jreq.idle)
        direct_idle.append(dreq.idle)
        job_rps.append(jr)
        direct_rps.append(dr)
        job_window_rps.append(jw)
        direct_window_rps.append(dw)
        e2e.append(jr / dr)
        steady.append(jw / dw)
        if jreq.started is not None:
            to_import.append(jreq.started - run.t0)
        if jreq.lifespan is not None:
            to_lifespan.append(jreq.lifespan - run.t0)
        to_first.append(jreq.first - run.t0)
        tails.append(run.t0 + run.seconds - jreq.last)
        if os.environ.get("BENCH_SPANS"):
            for label, req in (("job", jreq), ("direct", dreq)):
                t = req.first
                print(label, [(round((a - t) * 1000), round((b - a) * 1000)) for a, b, _ in req.spans])
        print(
            f"round {n + 1} ({'/'.join(order)}): job {run.seconds:.3f} s = {jr:,.0f} rec/s "
            f"(first→last request {jreq.window:.3f} s = {jw:,.0f} rec/s, create→first request "
            f"{jreq.first - run.t0:.3f} s); direct {dsec:.3f} s = {dr:,.0f} rec/s (first→last "
            f"{dreq.window:.3f} s = {dw:,.0f} rec/s); ratio e2e {jr / dr:.3f}, excl. start-up {jw / dw:.3f}",
            flush=True,
        )
    print(f"job create → Completed seen (50 ms polls): {summary(job_s)} s")
    print(f"job records/s, end to end:                 {summary(job_rps, '{:,.0f}')}")
    print(f"direct records/s (read + POST + write):    {summary(direct_rps, '{:,.0f}')}")
    print(f"job records/s, first → last request:       {summary(job_window_rps, '{:,.0f}')}")
    print(f"direct records/s, first → last request:    {summary(direct_window_rps, '{:,.0f}')}")
    if to_import:
        print(f"instance start: create → app imported:     {summary(to_import)} s")
    if to_lifespan:
        print(f"instance start: create → app started:      {summary(to_lifespan)} s")
    print(f"instance start: create → first request:    {summary(to_first)} s")
    print(f"after the last request → Completed seen:   {summary(tails)} s")
    print(f"container idle in first → last, job:       {summary([x * 100 for x in job_idle], '{:.1f}')} %")
    print(f"container idle in first → last, direct:    {summary([x * 100 for x in direct_idle], '{:.1f}')} %")
    print(f"CPU µs per record, homeport server (job):  {summary(job_cpu)}")
    print(f"CPU µs per record, bench client (direct):  {summary(direct_cpu)}")
    print(f"RATIO records/s job / direct, end to end (incl. instance start): {summary(e2e)}")
    print(f"RATIO records/s job / direct, excluding start-up (first → last request): {summary(steady)}")
    verdict = "met" if statistics.median(e2e) >= TARGET_RATIO else "missed"
    print(f"target ≥ {TARGET_RATIO} end to end: {verdict}", flush=True)
    shutil.rmtree(work / "in", ignore_errors=True)
    shutil.rmtree(work / "direct-out", ignore_errors=True)


def memory(args: argparse.Namespace, work: Path, data_dir: Path, sm: Any, server_pid: int) -> None:
    size_mb = args.mem_mb
    free = shutil.disk_usage(work).free
    if free < 4 * size_mb * MIB:
        print(f"memory: only {free / MIB:,.0f} MiB free: using 500 MiB instead of {size_mb} MiB")
        size_mb = 500
    path = work / "big.csv"
    lines = write_big(path, size_mb * MIB, 16)
    size = path.stat().st_size
    homeport(data_dir, "cp", str(path), "s3://bench-in/big/big.csv")
    path.unlink()
    print(
        f"memory: one object of {size / MIB:,.0f} MiB, {lines:,} lines; MaxPayloadInMB {MEM_PAYLOAD_MB}, "
        f"MaxConcurrentTransforms {CONCURRENCY}",
        flush=True,
    )
    time.sleep(1.0)
    before = rss_kb(server_pid)
    with contextlib.suppress(OSError):
        Path(f"/proc/{server_pid}/clear_refs").write_text("5")  # resets VmHWM
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                samples.append(rss_kb(server_pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run = run_job(
            sm, job_request("tt-mem", "s3://bench-in/big/", "s3://bench-out/tt-mem/", MEM_PAYLOAD_MB)
        )
    finally:
        done.set()
        sampler.join()
    hwm = rss_kb(server_pid, "VmHWM")
    after = rss_kb(server_pid)
    peak = max(samples + [before])
    store = open_object_store("local", Settings(data_dir=data_dir).objects_dir, None, "us-east-1")
    out_lines = 0
    with store.open_read(S3Uri.parse("s3://bench-out/tt-mem/big.csv.out")) as out:
        while chunk := out.read(8 * MIB):
            out_lines += chunk.count(b"\n")
    if out_lines != lines:
        raise RuntimeError(f"the output has {out_lines} lines, the input {lines}")
    print(
        f"memory: job {run.seconds:.1f} s ({lines / run.seconds:,.0f} rec/s, "
        f"{size / MIB / run.seconds:.1f} MiB/s), "
        f"{len(samples)} samples"
    )
    print(
        f"server RSS before {before / 1024:.1f} MiB, peak (100 ms samples) {peak / 1024:.1f} MiB, "
        f"VmHWM {hwm / 1024:.1f} MiB, after {after / 1024:.1f} MiB"
    )
    grown = max(peak, hwm) - before
    print(
        f"PEAK − BEFORE {grown / 1024:.1f} MiB = {grown * 1024 / size * 100:.2f}% of the "
        f"{size / MIB:,.0f} MiB input",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--lines", type=int, default=50_000, help="lines per input object")
    parser.add_argument("--mem-mb", type=int, default=1024, help="size of the memory test's object (MiB)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("HOMEPORT_VENV_CACHE", str(Path.home() / ".cache" / "homeport-test-venvs"))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"free disk under {WORK}: {shutil.disk_usage(WORK).free / 2**30:.1f} GiB", flush=True)
    work = Path(tempfile.mkdtemp(prefix="transform-throughput-", dir=WORK))
    server = None
    direct_run: ProcessRun | None = None
    try:
        data_dir = work / "data"
        data_dir.mkdir()
        image_root = work / "image"
        image_root.mkdir()
        (image_root / "app.py").write_text(MODEL_APP)
        (image_root / "serve").write_text(SERVE)
        (image_root / "serve").chmod(0o755)
        (work / "requirements.txt").write_text(requirements())
        port = free_port()
        server = start_server(data_dir, port, work / "server.log")
        print("registering the image (builds its venv once) ...", flush=True)
        homeport(
            data_dir, "image", "add", IMAGE, str(image_root), "--requirements", str(work / "requirements.txt")
        )
        sm = boto3.client(
            "sagemaker",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="homeport",
            aws_secret_access_key="homeport",
            config=Config(retries={"max_attempts": 1}),
        )
        sm.create_model(ModelName=MODEL, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": f"{IMAGE}:latest"})
        if not args.skip_throughput:
            settings = Settings(data_dir=data_dir)
            image = ImageRegistry(settings.images_dir, VenvCache(settings.venvs_dir)).resolve(
                f"{IMAGE}:latest"
            )
            spec = RunSpec(
                name="bench/transform-direct",
                image=image,
                argv=["serve"],
                env={
                    "SAGEMAKER_BATCH": "true",
                    "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(PAYLOAD_MB),
                    "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
                    "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(CONCURRENCY),
                },
                mounts=[],
                network="none",
                scratch=work / "scratch",
            )
            (work / "scratch").mkdir()
            direct_run = ProcessRuntime().start(spec)
            direct = DirectInstance(direct_run)
            direct.wait_ready()
            throughput(args, work, data_dir, sm, direct, server.pid)
        if not args.skip_memory:
            memory(args, work, data_dir, sm, server.pid)
    finally:
        if direct_run is not None:
            direct_run.terminate()
            if direct_run.wait(10) is None:
                direct_run.kill()
        if server is not None:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
