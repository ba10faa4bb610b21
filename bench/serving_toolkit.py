"""Serving one scikit-learn decision tree: the classic nginx + gunicorn + Flask stack vs homeport_toolkit.

The same model, the same request, side by side:

* **classic**: ``examples/decision_trees`` unmodified (SageMaker's ``scikit_bring_your_own``):
  its ``serve`` starts nginx (its ``nginx.conf``, port 8080) in front of gunicorn (sync workers,
  one per CPU) running the Flask app of ``predictor.py`` (pandas ``read_csv`` per request,
  ``model.predict``, pandas ``to_csv``);
* **toolkit**: Homeport's scikit-learn image as Homeport assembles it (the image folder plus
  ``homeport_toolkit``): its ``serve`` is ``homeport_toolkit.serving.main(default_handler=
  "sklearn_handler")``, on port 8081 (``SAGEMAKER_BIND_TO_PORT``), with the user's
  ``model/code/inference.py`` defining only ``model_fn`` (unpickle the tree), so ``predict_fn``
  is the image's (``model.predict``); workers default to one per CPU too. With ``--predict fast``
  the user's module also defines ``predict_fn`` with ``homeport_toolkit.fast_sklearn.predict``
  (the same predictions without scikit-learn's per-call input validation).

The tree is trained by the example's own ``train`` on ``examples/data/iris.csv`` (the pickle both
servers load). Both stacks use ``/opt/ml`` and the classic one also ``/opt/program``, ``/tmp``
and ``/var/log/nginx``, so the measuring part runs in a private mount and network namespace
(``unshare --net --mount``) where those are bind mounts of folders under
``bench/.work/serving_toolkit/``: nothing on the host is touched, and the ports are private.
Each side's Python environment is a venv built once in ``$HOMEPORT_VENV_CACHE`` (default
``~/.cache/homeport-test-venvs``): the example's ``requirements.txt``, and scikit-learn 1.9.1 plus
the toolkit's ``requirements.txt``.

Measurement: ``wrk -t1 -c16 --latency`` POSTing one iris row as ``text/csv`` (``Accept:
text/csv``; both answer ``setosa``) to ``/invocations`` on 127.0.0.1, after a warm-up. Rounds in
ABBA order (the order reverses every other round) so drift on a shared machine hits both sides
alike. Prints each round, the medians of requests/s and p99 latency, and the median [min–max] of
the per-round ratios toolkit ÷ classic (target ≥ 3.0).

    apt-get install -y wrk nginx
    .venv/bin/python bench/serving_toolkit.py [--rounds 6] [--duration 5] [--connections 16] [--predict fast]

Needs root (namespaces, mounts). Everything started here is stopped by PID; the work folder is
removed after a successful run (kept, with the servers' logs, after a failure).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work" / "serving_toolkit"
EXAMPLE = ROOT / "examples" / "decision_trees"
IRIS = ROOT / "examples" / "data" / "iris.csv"
TOOLKIT_REQUIREMENTS = ROOT / "homeport" / "builtins" / "toolkit" / "requirements.txt"
SKLEARN = "scikit-learn==1.9.1"  # the version the example pins, so both load the same pickle

BODY = "5.1,3.5,1.4,0.2"
EXPECTED = b"setosa\n"
PORTS = {"classic": 8080, "toolkit": 8081}
TARGET = 3.0

INFERENCE = """\
import os
import pickle


def model_fn(model_dir):
    with open(os.path.join(model_dir, "decision-tree-model.pkl"), "rb") as f:
        return pickle.load(f)
"""
# --predict fast: the user's predict_fn skips scikit-learn's per-call input validation.
FAST_PREDICT = """

from homeport_toolkit.fast_sklearn import predict


def predict_fn(data, model):
    return predict(model, data)
"""

POST_LUA = f"""
wrk.method = "POST"
wrk.body = "{BODY}"
wrk.headers["Content-Type"] = "text/csv"
wrk.headers["Accept"] = "text/csv"
"""


# -- outside the namespace: venvs and folders ---------------------------------------------------


def prepare(fast_predict: bool) -> dict[str, str]:
    """Build (or reuse) both venvs and lay out the work folder; the paths the inside part needs."""
    sys.path.insert(0, str(ROOT))
    from homeport.builtins.catalog import BUILTINS
    from homeport.images.venvs import VenvCache

    cache = VenvCache(
        Path(os.environ.get("HOMEPORT_VENV_CACHE", Path.home() / ".cache" / "homeport-test-venvs"))
    )
    say = lambda line: print(f"  {line}", flush=True)  # noqa: E731
    print("venv of the classic stack (examples/decision_trees/requirements.txt) ...", flush=True)
    classic_venv = cache.ensure((EXAMPLE / "requirements.txt").read_text(), say)
    print("venv of the toolkit (scikit-learn + homeport_toolkit's requirements) ...", flush=True)
    toolkit_venv = cache.ensure(f"{SKLEARN}\n{TOOLKIT_REQUIREMENTS.read_text()}", say)

    if WORK.exists():
        shutil.rmtree(WORK)
    for sub in (
        "ml/input/config",
        "ml/input/data/training",
        "ml/model/code",
        "ml/output",
        "tmp",
        "nginx-log",
    ):
        (WORK / sub).mkdir(parents=True)
    shutil.copytree(EXAMPLE, WORK / "program")
    BUILTINS["sklearn"].assemble(WORK / "toolkit-program")
    shutil.copy(IRIS, WORK / "ml" / "input" / "data" / "training" / "iris.csv")
    (WORK / "ml" / "input" / "config" / "hyperparameters.json").write_text("{}")
    (WORK / "ml" / "model" / "code" / "inference.py").write_text(
        INFERENCE + (FAST_PREDICT if fast_predict else "")
    )
    (WORK / "post.lua").write_text(POST_LUA)
    return {"classic_venv": str(classic_venv), "toolkit_venv": str(toolkit_venv)}


# -- inside the namespace ----------------------------------------------------------------------


def sh(*command: str) -> None:
    subprocess.run(command, check=True)


def bind_mounts() -> None:
    sh("ip", "link", "set", "lo", "up")
    for source, target in (
        (WORK / "ml", "/opt/ml"),
        (WORK / "program", "/opt/program"),
        (WORK / "tmp", "/tmp"),
        (WORK / "nginx-log", "/var/log/nginx"),
    ):
        os.makedirs(target, exist_ok=True)
        sh("mount", "--bind", str(source), target)


def train(classic_venv: str) -> None:
    env = dict(os.environ, PATH=f"{classic_venv}/bin:/opt/program:{os.environ['PATH']}")
    sh_env = subprocess.run(["train"], cwd="/opt/program", env=env, capture_output=True, text=True)
    if sh_env.returncode != 0 or not Path("/opt/ml/model/decision-tree-model.pkl").is_file():
        raise SystemExit(f"training failed:\n{sh_env.stdout}\n{sh_env.stderr}")


def start_classic(classic_venv: str) -> subprocess.Popen[bytes]:
    # HOME: gunicorn 26 opens a control socket in ~/.gunicorn; keep it in the work folder.
    env = dict(
        os.environ, PATH=f"{classic_venv}/bin:/opt/program:{os.environ['PATH']}", HOME=str(WORK / "home")
    )
    with open(WORK / "classic.log", "wb") as log:
        return subprocess.Popen(
            ["serve"],
            cwd="/opt/program",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_toolkit(toolkit_venv: str) -> subprocess.Popen[bytes]:
    program = WORK / "toolkit-program"
    env = dict(
        os.environ,
        SAGEMAKER_BASE_DIR="/opt/ml",
        SAGEMAKER_PROGRAM="inference.py",
        SAGEMAKER_BIND_TO_PORT=str(PORTS["toolkit"]),
        PYTHONUNBUFFERED="TRUE",
    )
    with open(WORK / "toolkit.log", "wb") as log:
        return subprocess.Popen(
            [f"{toolkit_venv}/bin/python", str(program / "serve")],
            cwd=program,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def invoke(port: int) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=BODY.encode(),
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def wait_ready(name: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}; see {WORK}/{name}.log")
        try:
            answer = invoke(PORTS[name])
            if answer != EXPECTED:
                raise SystemExit(f"{name} answered {answer!r}, expected {EXPECTED!r}")
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"{name} never answered; see {WORK}/{name}.log")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group the server leads (nginx and gunicorn, or uvicorn's workers)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):  # stragglers (nginx's worker, gunicorn's workers)
        os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    assert match, out
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(port: int, connections: int, duration: int) -> Sample:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(WORK / "post.lua"),
        f"http://127.0.0.1:{port}/invocations",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"errors during the run:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Sample(rps, _latency(out, "50"), _latency(out, "99"))


def inside(args: argparse.Namespace) -> None:
    paths = json.loads(args.inside)
    bind_mounts()
    train(paths["classic_venv"])
    servers = {
        "classic": start_classic(paths["classic_venv"]),
        "toolkit": start_toolkit(paths["toolkit_venv"]),
    }
    try:
        for name, process in servers.items():
            wait_ready(name, process)
        for name in servers:  # warm-up: caches, lazy imports, the first connections
            run_wrk(PORTS[name], args.connections, 2)
        samples: dict[str, list[Sample]] = {name: [] for name in servers}
        ratios: list[float] = []
        print(
            f"\n{'round':>5} {'order':<16} {'classic req/s':>13} {'toolkit req/s':>13} {'ratio':>6}",
            flush=True,
        )
        for round_no in range(args.rounds):
            order = ["classic", "toolkit"] if round_no % 2 == 0 else ["toolkit", "classic"]
            got = {name: run_wrk(PORTS[name], args.connections, args.duration) for name in order}
            for name, sample in got.items():
                samples[name].append(sample)
            ratio = got["toolkit"].rps / got["classic"].rps
            ratios.append(ratio)
            print(
                f"{round_no + 1:>5} {'/'.join(order):<16} {got['classic'].rps:>13.0f} "
                f"{got['toolkit'].rps:>13.0f} {ratio:>5.2f}x",
                flush=True,
            )
    finally:
        for process in servers.values():
            stop(process)

    print(
        f"\nwrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds (ABBA), one CSV iris row; "
        f"toolkit predict_fn: {args.predict}"
    )
    header = f"{'side':<8} {'req/s median':>12} {'min-max':>13} {'p50 ms':>7} {'p99 ms median':>13}"
    print(f"{header} {'p99 min-max':>13}")
    for name, runs in samples.items():
        rps = [s.rps for s in runs]
        p99 = [s.p99_ms for s in runs]
        print(
            f"{name:<8} {statistics.median(rps):>12.0f} {min(rps):>6.0f}-{max(rps):<6.0f} "
            f"{statistics.median(s.p50_ms for s in runs):>7.2f} {statistics.median(p99):>13.2f} "
            f"{min(p99):>6.2f}-{max(p99):<6.2f}"
        )
    median = statistics.median(ratios)
    verdict = "met" if median >= TARGET else "MISSED"
    print(
        f"ratio toolkit / classic: median {median:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]; "
        f"target >= {TARGET:.1f}x: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--predict",
        choices=("image", "fast"),
        default="image",
        help="toolkit side: the image's predict_fn (model.predict), or homeport_toolkit.fast_sklearn",
    )
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(args)
        return
    for tool in ("wrk", "nginx", "unshare"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install -y wrk nginx util-linux)")
    paths = prepare(args.predict == "fast")
    command = ["unshare", "--net", "--mount", "--propagation", "private", sys.executable, __file__]
    command += ["--rounds", str(args.rounds), "--duration", str(args.duration)]
    command += [
        "--connections",
        str(args.connections),
        "--predict",
        args.predict,
        "--inside",
        json.dumps(paths),
    ]
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    code = subprocess.run(command).returncode
    if code == 0:
        shutil.rmtree(WORK)  # kept after a failure: the servers' logs are there
    sys.exit(code)


if __name__ == "__main__":
    main()
