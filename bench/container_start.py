"""CreateTrainingJob → the container's ``train`` running, docker runtime, against ``podman run``.

Starts ``homeport server --runtime docker`` on 127.0.0.1 with a fresh data dir under
``bench/.work/`` and ``DOCKER_HOST`` at Podman's Docker-compatible service
(``unix:///var/tmp/homeport-podman/podman.sock`` unless already set; ``eval
"$(scripts/podman.sh)"`` starts it). Builds a tiny image with ``homeport image build``
(``FROM localhost/homeport/python-base:bookworm``) whose ``train`` prints
``STARTED <time.time()>`` as its first statement, runs warm-ups, then N rounds. Each round,
in ABBA order (the order reverses every other round, so drift on a shared machine hits every
side alike):

* ``homeport job``: ``t0 = time.time()`` just before boto3's ``create_training_job``
  (EnableNetworkIsolation, so the container gets ``--network none`` like the reference), ``t1``
  = the STARTED timestamp read back from the job's log stream
  (``logs/TrainingJobs/JOB/algo-1.jsonl``); the job is awaited to Completed;
* ``podman run`` (the reference): ``podman run --rm --network none IMAGE train`` of the same
  image (``CONTAINERS_CONF`` set, so runc), ``t0`` just before the spawn, ``t1`` = the STARTED
  timestamp it prints; the run is awaited to exit;
* ``sdk create+start`` (informational): the bench's own ``docker`` SDK client against the same
  service, ``containers.create(IMAGE_ID, ["train"], network_mode="none")`` + ``start()``, ``t1``
  from the container's logs; then ``wait()`` and ``remove()``: the engine API's floor without
  Homeport's options, mounts and threads.

Prints median/p90 of each side, the median [min–max] of the per-round ratios homeport ÷
``podman run`` (and ÷ sdk), the job's phases from its SecondaryStatusTransitions, and the
verdict against the target (ratio ≤ 1.2).

    .venv/bin/python bench/container_start.py [--jobs 15] [--warmup 2]

Needs root (the service and the image live in root's Podman storage). The server is stopped by
PID, the image is removed with the docker SDK and the work folder is deleted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import docker
import requests
from botocore.config import Config
from training_start import ROLE, WORK, free_port, quantile, server_env, started_at, stop_server, wait_done

BIN = Path(sys.executable).parent
HOMEPORT = str(BIN / "homeport")
PODMAN_DIR = Path("/var/tmp/homeport-podman")
DEFAULT_DOCKER_HOST = f"unix://{PODMAN_DIR / 'podman.sock'}"
BASE_IMAGE = "localhost/homeport/python-base:bookworm"
TARGET_RATIO = 1.2
TRAIN_SCRIPT = (
    "#!/usr/bin/env python\n"
    "print(f\"STARTED {__import__('time').time():.6f}\", flush=True)\n"
    "import os\n"
    "if os.path.isdir('/opt/ml/model'):  # absent under a plain `podman run`\n"
    "    open('/opt/ml/model/done', 'w').write('ok')\n"
)
DOCKERFILE = (
    f"FROM {BASE_IMAGE}\n"
    'ENV PYTHONUNBUFFERED=TRUE PATH="/opt/program:${PATH}"\n'
    "COPY train /opt/program/train\n"
    "WORKDIR /opt/program\n"
)


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DOCKER_HOST", DEFAULT_DOCKER_HOST)
    env.setdefault("CONTAINERS_CONF", str(PODMAN_DIR / "containers.conf"))  # runc: crun fails here
    return env


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**server_env(data_dir), **engine_env()}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [HOMEPORT, "server", "--port", str(port), "--data-dir", str(data_dir), "--runtime", "docker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early:\n{log_path.read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_homeport/health", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise SystemExit(f"server not ready:\n{log_path.read_text()}")


def build_image(context: Path, tag: str) -> str:
    """``homeport image build CONTEXT --tag TAG --quiet``; returns the image ID it prints."""
    out = subprocess.run(
        [HOMEPORT, "image", "build", str(context), "--tag", tag, "--quiet"],
        check=True,
        capture_output=True,
        text=True,
        env=engine_env(),
        timeout=600,
    ).stdout
    return out.strip().splitlines()[-1].strip()


def stamp(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("STARTED "):
            return float(line.split()[1])
    raise SystemExit(f"no STARTED line in {output!r}")


def request(name: str, image: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://bench-output/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": {"lr": "0.1"},
        "EnableNetworkIsolation": True,
    }


def row(label: str, values: list[float], width: int = 24) -> str:
    return (
        f"{label:<{width}}{statistics.median(values) * 1e3:>10.1f}{quantile(values, 90) * 1e3:>9.1f}"
        f"{min(values) * 1e3:>9.1f}{max(values) * 1e3:>9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=15, help="measured jobs (rounds)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    env = engine_env()
    podman = shutil.which("podman") or "podman"
    client = docker.DockerClient(base_url=env["DOCKER_HOST"], timeout=120)
    try:
        client.ping()
        client.images.get(BASE_IMAGE)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise SystemExit(
            f"no engine with {BASE_IMAGE} at DOCKER_HOST={env['DOCKER_HOST']} ({exc}); "
            'run eval "$(scripts/podman.sh)" first'
        ) from exc

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cpus)")
    WORK.mkdir(parents=True, exist_ok=True)
    work = WORK / f"container-start-{os.getpid()}"
    data_dir = work / "data"
    context = work / "image"
    context.mkdir(parents=True)
    data_dir.mkdir()
    (context / "train").write_text(TRAIN_SCRIPT)
    (context / "train").chmod(0o755)
    (context / "Dockerfile").write_text(DOCKERFILE)
    tag = f"homeport-bench/container-start:{os.getpid()}"
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    image_id: str | None = None
    try:
        image_id = build_image(context, tag)
        proc = start_server(data_dir, port, work / "server.log")
        sm = boto3.client(
            "sagemaker",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="homeport",
            aws_secret_access_key="homeport",
            config=Config(retries={"max_attempts": 1}),
        )
        logs = data_dir / "logs" / "TrainingJobs"
        phases: dict[str, list[float]] = {
            "create→Downloading": [],
            "Downloading→Training": [],
            "Training→STARTED": [],
            "STARTED→Uploading": [],
            "create→Completed": [],
        }

        def run_job(name: str) -> float:
            t0 = time.time()
            sm.create_training_job(**request(name, tag))
            t1 = started_at(logs / name / "algo-1.jsonl")
            desc = wait_done(sm, name)
            starts = {t["Status"]: t["StartTime"].timestamp() for t in desc["SecondaryStatusTransitions"]}
            if not name.startswith("warmup"):
                phases["create→Downloading"].append(starts["Downloading"] - t0)
                phases["Downloading→Training"].append(starts["Training"] - starts["Downloading"])
                phases["Training→STARTED"].append(t1 - starts["Training"])
                phases["STARTED→Uploading"].append(starts["Uploading"] - t1)
                phases["create→Completed"].append(starts["Completed"] - t0)
            return t1 - t0

        def podman_run() -> float:
            t0 = time.time()
            out = subprocess.run(
                [podman, "run", "--rm", "--network", "none", image_id, "train"],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            ).stdout
            return stamp(out) - t0

        def sdk_run() -> float:
            t0 = time.time()
            container = client.containers.create(image_id, ["train"], network_mode="none", detach=True)
            try:
                container.start()
                container.wait(timeout=120)
                out = container.logs(stdout=True, stderr=False).decode()
            finally:
                container.remove(force=True)
            return stamp(out) - t0

        for i in range(args.warmup):
            run_job(f"warmup-{i}")
            podman_run()
            sdk_run()

        sides: dict[str, Callable[[int], float]] = {
            "homeport job": lambda i: run_job(f"bench-{i:03d}"),
            "podman run": lambda _i: podman_run(),
            "sdk create+start": lambda _i: sdk_run(),
        }
        samples: dict[str, list[float]] = {side: [] for side in sides}
        for round_ in range(args.jobs):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                samples[side].append(sides[side](round_))
    finally:
        if proc is not None:
            stop_server(proc)
        if image_id is not None:
            try:
                client.images.remove(image_id, force=True)
            except docker.errors.APIError as exc:
                print(f"could not remove image {tag} ({image_id}): {exc}", file=sys.stderr)
        client.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\nCreateTrainingJob → train started (docker runtime, Podman service, cached image)")
    print(f"{'side':<24}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}{'max ms':>9}   (n={args.jobs})")
    for side, values in samples.items():
        print(row(side, values))
    print("phases of the job (from SecondaryStatusTransitions; server-side timestamps):")
    for phase, values in phases.items():
        print(row(f"  {phase}", values))
    ratios: dict[str, list[float]] = {}
    for ref in ("podman run", "sdk create+start"):
        ratios[ref] = [j / r for j, r in zip(samples["homeport job"], samples[ref], strict=True)]
        low, high = min(ratios[ref]), max(ratios[ref])
        print(f"RATIO homeport / {ref}: {statistics.median(ratios[ref]):.2f}x [{low:.2f}–{high:.2f}]")
    ratio = statistics.median(ratios["podman run"])
    verdict = "MET" if ratio <= TARGET_RATIO else f"MISSED ({ratio:.2f}x)"
    print(f"TARGET homeport / podman run ≤ {TARGET_RATIO:.1f}x: {ratio:.2f}x → {verdict}")


if __name__ == "__main__":
    main()
