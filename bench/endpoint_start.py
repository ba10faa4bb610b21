"""CreateEndpoint → InService for a cached image whose /ping is ready in well under 0.5 s, on a real server.

Starts ``homeport server --instance-stop-grace 2`` on 127.0.0.1 with a fresh data dir under
``bench/.work/``, registers a one-file image whose ``serve`` is a stdlib ``http.server`` app on
0.0.0.0:8080 (GET /ping → 200, POST /invocations → a small JSON answer naming the model file),
uploads a tiny ``model.tar.gz`` with ``homeport cp`` and creates one model and one endpoint
configuration. Then, after warm-up endpoints (the first one downloads and unpacks the model
data into the server's cache), N rounds, each with a fresh endpoint name:

* ``endpoint``: ``t0 = perf_counter()`` just before boto3's ``create_endpoint``, then
  ``describe_endpoint`` every 20 ms until ``InService``, ``t1``; one ``invoke_endpoint``
  (sagemaker-runtime) proves it answers; ``delete_endpoint`` and ``describe_endpoint`` until it
  raises ValidationException (that delete → gone time is printed too, informational);
* ``netns serve`` (the reference): the same ``serve`` script started directly in a private
  network namespace, ``unshare -n sh -c 'ip link set lo up && exec python serve'``, spawn → the
  first 200 from ``GET /ping``, polled every 5 ms from a socket created inside the namespace
  (:func:`homeport.hosting.netns.connect_in_netns`); then SIGTERM. That is the floor of any
  isolated start of this image: a namespace and one interpreter that imports ``http.server``.

The two sides run in ABBA order (the order reverses every other round) so drift on a shared
machine hits both alike. Prints median/p90 of each side, the server-side share
(``LastModifiedTime - CreationTime`` of the InService endpoint), the median [min–max] of the
per-round ratios endpoint / reference, and the verdict against the target (median ≤ 2 s).

    .venv/bin/python bench/endpoint_start.py [--rounds 10] [--warmup 2]

Needs root (namespaces). Everything started here is stopped by PID; the work folder is removed.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from training_start import ROLE, WORK, free_port, homeport, quantile, server_env, stop_server

from homeport.hosting.netns import connect_in_netns

BIN = Path(sys.executable).parent
HOMEPORT = str(BIN / "homeport")
IMAGE = "bench-serve"
MODEL = "bench-serve-model"
CONFIG = "bench-serve-config"
TARGET_S = 2.0
POLL_S = 0.02
REF_POLL_S = 0.005
BODY = b"5.1,3.5,1.4,0.2"
LO_UP_EXEC = 'ip link set lo up && exec "$0" "$1"'  # run by sh inside the new namespace

SERVE_SCRIPT = '''#!/usr/bin/env python
"""A tiny stdlib inference server: GET /ping, POST /invocations on 0.0.0.0:8080."""
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_FILE = "/opt/ml/model/model.txt"
MODEL = open(MODEL_FILE).read().strip() if os.path.exists(MODEL_FILE) else "none"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ping":
            self._answer(200, b"")
        else:
            self._answer(404, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/invocations":
            self._answer(404, b"")
            return
        self._answer(200, json.dumps({"model": MODEL, "bytes": len(body)}).encode())

    def log_message(self, *args):
        pass


ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
print(f"LISTENING {time.time():.6f}", flush=True)
server.serve_forever()
'''


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                HOMEPORT,
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--instance-stop-grace",
                "2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(data_dir),
            start_new_session=True,
        )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early:\n{log_path.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/_homeport/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise SystemExit(f"server not ready:\n{log_path.read_text()}")


def model_tarball(path: Path) -> None:
    data = b"bench-model-v1\n"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def clients(port: int) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": "homeport",
        "aws_secret_access_key": "homeport",
        "config": Config(retries={"max_attempts": 1}),
    }
    return boto3.client("sagemaker", **kwargs), boto3.client("sagemaker-runtime", **kwargs)


def ping_in_netns(pid: int) -> bool:
    try:
        sock = connect_in_netns(pid, 8080, 1.0)
    except OSError:
        return False
    conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=1.0)
    conn.sock = sock
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def listening_at(streams: Path, timeout: float = 10) -> float:
    """The LISTENING timestamp the instance's serve printed, from the endpoint's log streams."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in streams.rglob("*.jsonl"):
            for line in path.read_text().splitlines():
                try:
                    message = str(json.loads(line)["m"])
                except (ValueError, KeyError):
                    continue
                if message.startswith("LISTENING "):
                    return float(message.split()[1])
        time.sleep(0.01)
    raise SystemExit(f"no LISTENING line under {streams} after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="measured endpoints (rounds)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (util-linux, iproute2)")

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    WORK.mkdir(parents=True, exist_ok=True)
    work = WORK / f"endpoint-start-{os.getpid()}"
    data_dir = work / "data"
    image_dir = work / "image"
    image_dir.mkdir(parents=True)
    data_dir.mkdir()
    serve = image_dir / "serve"
    serve.write_text(SERVE_SCRIPT)
    serve.chmod(0o755)
    own_netns = os.stat("/proc/self/ns/net").st_ino
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    refs: list[subprocess.Popen[bytes]] = []
    phases: dict[str, list[float]] = {
        "create → serve listening": [],
        "listening → InService (server)": [],
        "InService → seen by the client": [],
    }
    server_side: list[float] = []
    deletes: list[float] = []
    try:
        proc = start_server(data_dir, port, work / "server.log")
        homeport(data_dir, "image", "add", IMAGE, str(image_dir))
        model_tarball(work / "model.tar.gz")
        uri = "s3://bench-models/endpoint-start/model.tar.gz"
        homeport(data_dir, "cp", str(work / "model.tar.gz"), uri)
        sm, rt = clients(port)
        sm.create_model(
            ModelName=MODEL,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": f"{IMAGE}:latest", "ModelDataUrl": uri},
        )
        sm.create_endpoint_config(
            EndpointConfigName=CONFIG,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": MODEL,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 1.0,
                }
            ],
        )

        def endpoint(name: str) -> float:
            wall0 = time.time()
            t0 = time.perf_counter()
            sm.create_endpoint(EndpointName=name, EndpointConfigName=CONFIG)
            while True:
                desc = sm.describe_endpoint(EndpointName=name)
                status = desc["EndpointStatus"]
                if status == "InService":
                    break
                if status not in ("Creating",):
                    raise SystemExit(f"{name} went {status}: {desc.get('FailureReason')}")
                if time.perf_counter() - t0 > 60:
                    raise SystemExit(f"{name} not InService after 60 s")
                time.sleep(POLL_S)
            t1 = time.perf_counter()
            if not name.startswith("warmup"):
                in_service = desc["LastModifiedTime"].timestamp()
                listening = listening_at(data_dir / "logs" / "Endpoints" / name)
                server_side.append(in_service - desc["CreationTime"].timestamp())
                phases["create → serve listening"].append(listening - wall0)
                phases["listening → InService (server)"].append(in_service - listening)
                phases["InService → seen by the client"].append(wall0 + (t1 - t0) - in_service)
            answer = rt.invoke_endpoint(EndpointName=name, Body=BODY, ContentType="text/csv")
            got = json.loads(answer["Body"].read())
            if got != {"model": "bench-model-v1", "bytes": len(BODY)}:
                raise SystemExit(f"{name}: unexpected answer {got}")
            d0 = time.perf_counter()
            sm.delete_endpoint(EndpointName=name)
            while True:
                try:
                    sm.describe_endpoint(EndpointName=name)
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ValidationException":
                        raise
                    break
                if time.perf_counter() - d0 > 60:
                    raise SystemExit(f"{name} still there 60 s after DeleteEndpoint")
                time.sleep(POLL_S)
            if not name.startswith("warmup"):
                deletes.append(time.perf_counter() - d0)
            return t1 - t0

        def reference() -> float:
            t0 = time.perf_counter()
            ref = subprocess.Popen(
                [
                    "unshare",
                    "-n",
                    "sh",
                    "-c",
                    'ip link set lo up && exec "$0" "$1"',
                    sys.executable,
                    str(serve),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=image_dir,
            )
            refs.append(ref)
            try:
                while True:
                    if ref.poll() is not None:
                        raise SystemExit(f"the reference serve exited with {ref.returncode}")
                    try:  # before unshare(2) ran, the pid is still in our namespace
                        entered = os.stat(f"/proc/{ref.pid}/ns/net").st_ino != own_netns
                    except OSError:
                        entered = False
                    if entered and ping_in_netns(ref.pid):
                        break
                    if time.perf_counter() - t0 > 30:
                        raise SystemExit("the reference serve never answered /ping")
                    time.sleep(REF_POLL_S)
                return time.perf_counter() - t0
            finally:
                ref.send_signal(signal.SIGTERM)
                try:
                    ref.wait(5)
                except subprocess.TimeoutExpired:
                    ref.kill()
                    ref.wait()
                refs.remove(ref)

        warm = [endpoint(f"warmup-{i}") for i in range(args.warmup)]
        for _ in range(args.warmup):
            reference()
        print("warm-up endpoints (ms):", ", ".join(f"{w * 1e3:.0f}" for w in warm))

        sides: dict[str, Callable[[int], float]] = {
            "endpoint": lambda i: endpoint(f"bench-{i:03d}"),
            "netns serve": lambda _i: reference(),
        }
        samples: dict[str, list[float]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                samples[side].append(sides[side](round_))
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{side} {samples[side][-1] * 1e3:.0f} ms" for side in sides),
                flush=True,
            )
    finally:
        for ref in refs:
            if ref.poll() is None:
                ref.kill()
                ref.wait()
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\nCreateEndpoint → InService (cached image, stdlib http.server serve, one instance)")
    print(f"{'side':<38}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}{'max ms':>9}   (n={args.rounds})")
    rows = {
        "endpoint: create → InService": samples["endpoint"],
        "  server side (LastModified-Creation)": server_side,
        "netns serve: spawn → /ping 200": samples["netns serve"],
        "delete → describe fails (info)": deletes,
    }
    rows.update({f"  {phase}": values for phase, values in phases.items()})
    for label, values in rows.items():
        print(
            f"{label:<38}{statistics.median(values) * 1e3:>10.1f}{quantile(values, 90) * 1e3:>9.1f}"
            f"{min(values) * 1e3:>9.1f}{max(values) * 1e3:>9.1f}"
        )
    ratios = [e / r for e, r in zip(samples["endpoint"], samples["netns serve"], strict=True)]
    spread = f"[{min(ratios):.2f}–{max(ratios):.2f}]"
    print(f"RATIO endpoint / netns serve: {statistics.median(ratios):.2f}x {spread}")
    median = statistics.median(samples["endpoint"])
    verdict = "MET" if median <= TARGET_S else f"MISSED by {(median - TARGET_S) * 1e3:.0f} ms"
    print(f"TARGET median ≤ {TARGET_S * 1e3:.0f} ms: {median * 1e3:.1f} ms → {verdict}")


if __name__ == "__main__":
    main()
