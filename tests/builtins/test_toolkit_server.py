"""A real ``serve`` process: homeport_toolkit.serving.main() with two uvicorn workers on 127.0.0.1.

The program folder holds a ``serve`` script written like the built-in images' (no ``__main__``
guard: the spawned workers re-run it) and an image default handler; the model folder holds a
pickled scikit-learn tree and the user's ``code/inference.py`` (model_fn only). Every server is
stopped by its PID.
"""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
from toolkit_support import free_port, toolkit_env

SERVE = """\
from homeport_toolkit.serving import main

main(default_handler="image_default")
"""
IMAGE_DEFAULT = """\
def predict_fn(data, model):
    return model.predict(data)
"""
INFERENCE = """\
import os
import pickle


def model_fn(model_dir):
    with open(os.path.join(model_dir, "tree.pkl"), "rb") as f:
        return pickle.load(f)
"""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        request = urllib.request.Request(self.url(path), data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start(program: Path, base: Path, log: Path, workers: int = 2) -> Server:
    port = free_port()
    env = toolkit_env(
        SAGEMAKER_BASE_DIR=str(base),
        SAGEMAKER_BIND_TO_PORT=str(port),
        SAGEMAKER_PROGRAM="inference.py",
        SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
        HOMEPORT_TOOLKIT_HOST="127.0.0.1",
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(program / "serve")],
            cwd=program,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server(process, port, log)


def wait_ready(server: Server, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"the server exited ({server.process.returncode}):\n{server.log.read_text()}"
            )
        try:
            if server.request("/ping")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server never answered /ping:\n{server.log.read_text()}")


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    program = tmp_path / "program"
    program.mkdir()
    (program / "serve").write_text(SERVE)
    (program / "image_default.py").write_text(IMAGE_DEFAULT)
    base = tmp_path / "ml"
    code = base / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(INFERENCE)
    iris = load_iris()
    labels = np.array(["setosa", "versicolor", "virginica"])[iris.target]
    with open(base / "model" / "tree.pkl", "wb") as f:
        pickle.dump(DecisionTreeClassifier(random_state=0).fit(iris.data, labels), f)
    return program, base


@pytest.fixture
def server(layout: tuple[Path, Path], tmp_path: Path) -> Iterator[Server]:
    program, base = layout
    (base / "model" / "code" / "requirements.txt").write_text("numpy\n")
    running = start(program, base, tmp_path / "serve.log")
    try:
        wait_ready(running)
        yield running
    finally:
        running.stop()


def test_ping_invocations_and_errors(server: Server) -> None:
    assert server.request("/ping")[0] == 200
    status, content_type, body = server.request(
        "/invocations", b"5.1,3.5,1.4,0.2", {"Content-Type": "text/csv"}
    )
    assert (status, content_type, json.loads(body)) == (200, "application/json", ["setosa"])
    status, content_type, body = server.request(
        "/invocations",
        b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
        {"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert (status, content_type, body) == (200, "text/csv", b"setosa\nvirginica\n")
    status, content_type, body = server.request(
        "/invocations", b"[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]", {"Content-Type": "application/json"}
    )
    assert (status, json.loads(body)) == (200, ["setosa", "virginica"])
    status, _, body = server.request("/invocations", b"x", {"Content-Type": "text/plain"})
    assert status == 415 and b"text/plain is not supported" in body
    status, _, body = server.request(
        "/invocations", b"5.1,3.5,1.4,0.2", {"Content-Type": "text/csv", "Accept": "image/png"}
    )
    assert status == 406 and b"image/png" in body
    status, _, body = server.request("/invocations", b"1,2", {"Content-Type": "text/csv"})
    assert status == 500
    assert body.startswith(
        b"ValueError: X has 2 features, but DecisionTreeClassifier is expecting 4 features"
    )
    assert server.request("/execution-parameters")[2] == (
        b'{"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}'
    )
    assert server.request("/other")[0] == 404

    assert server.stop() == 0  # SIGTERM: a graceful exit
    log = server.log.read_text()
    assert "Requirement already satisfied: numpy" in log  # model/code/requirements.txt ...
    assert log.count("Installing the requirements") == 1  # ... installed once, not per worker
    assert log.count("model_fn from user, input_fn from toolkit, predict_fn from default") == 2  # per worker
    assert "Traceback" in log and "X has 2 features" in log  # the 500's traceback went to stderr


def test_startup_failures_stop_the_server(layout: tuple[Path, Path], tmp_path: Path) -> None:
    program, base = layout
    (base / "model" / "tree.pkl").unlink()
    failed = start(program, base, tmp_path / "missing.log")
    try:
        assert failed.process.wait(timeout=90) == 1
    finally:
        failed.stop()
    assert "tree.pkl" in failed.log.read_text()

    (base / "model" / "code" / "inference.py").write_text(
        textwrap.dedent(
            """
            def model_fn(model_dir):
                return None
            def transform_fn(model, data, content_type, accept):
                return data
            def input_fn(data, content_type):
                return data
            """
        )
    )
    mixed = start(program, base, tmp_path / "mixed.log", workers=1)
    try:
        assert mixed.process.wait(timeout=90) == 1
    finally:
        mixed.stop()
    assert "ValueError: Cannot use transform_fn implementation in conjunction with" in mixed.log.read_text()
