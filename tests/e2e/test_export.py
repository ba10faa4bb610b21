"""``homeport export MODEL --format onnx``: a real server, a real model, and the exported server run.

A scikit-learn forest is converted to ``model.onnx`` (skl2onnx, as the scikit-learn image does),
packed into ``model.tar.gz``, put in the object store with ``homeport cp`` and registered with
CreateModel. The exported folder's ``server.py`` is then started on its own (this venv's Python,
a free port), asked over HTTP, and stopped by PID; its answers must equal the forest's own.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from e2e_support import ROLE, Server, free_port, start_server

from homeport.export.onnx_bundle import find_model_onnx, image_name

skl2onnx = pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

X, Y = load_iris(return_X_y=True)
NO_ONNX = (
    "model no-onnx has no model.onnx; built-in XGBoost, Linear Learner and scikit-learn models write one"
)


def _pack(folder: Path, files: dict[str, bytes]) -> Path:
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def _register(server: Server, name: str, archive: Path) -> str:
    uri = f"s3://models/export/{name}/model.tar.gz"
    server.cp(str(archive), uri)
    server.sagemaker().create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "homeport-onnx", "ModelDataUrl": uri},
    )
    return uri


def _export(server: Server, name: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return server.homeport(
        "export", name, "--format", "onnx", "--out", str(out), "--endpoint-url", server.url,
        "--data-dir", str(server.data_dir), *extra, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("homeport-export"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, Y)


@pytest.fixture(scope="module")
def forest_model(hp: Server, forest: RandomForestClassifier, tmp_path_factory: pytest.TempPathFactory) -> str:
    onnx_model = skl2onnx.to_onnx(forest, X[:1].astype(np.float32), target_opset=17)
    folder = tmp_path_factory.mktemp("forest")
    archive = _pack(folder, {"model.onnx": onnx_model.SerializeToString(), "model.joblib": b"not used"})
    return _register(hp, "forest", archive)


class ExportedServer:
    def __init__(self, folder: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(folder / "server.py"), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=log.parent,  # not the folder: server.py must find its model and handler itself
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exported server exited:\n{self.log.read_text()}")
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"exported server not ready:\n{self.log.read_text()}")

    def invoke(self, body: str | bytes, content_type: str, accept: str | None = None) -> requests.Response:
        headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:g}" for v in row) for row in rows) + "\n"


def test_export_writes_a_folder_whose_server_predicts_like_the_model(
    hp: Server, forest: RandomForestClassifier, forest_model: str, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    result = _export(hp, "forest", out)
    assert result.returncode == 0, result.stderr
    assert "Exported" in result.stdout and "forest" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert names == {
        "model.onnx", "onnx_handler.py", "server.py", "serve", "requirements.txt", "Dockerfile",
        ".dockerignore", "README.md",
    }  # fmt: skip
    assert ".venv/" in (out / ".dockerignore").read_text().split()  # a local venv stays out of the image
    assert os.access(out / "serve", os.X_OK)
    dockerfile = (out / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and "EXPOSE 8080" in dockerfile
    assert 'CMD ["serve"]' in dockerfile and "ENTRYPOINT" not in dockerfile
    requirements = (out / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} == {"onnxruntime", "numpy"}
    assert all("==" in r for r in requirements)
    readme = (out / "README.md").read_text()
    assert forest_model in readme and "{{" not in readme and "docker run" in readme and "SageMaker" in readme

    # Self-contained: neither Homeport nor its in-container toolkit is imported.
    probe = (
        f"import sys; sys.path.insert(0, {str(out)!r}); import server; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('homeport', 'homeport_toolkit')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=tmp_path, timeout=60)

    exported = ExportedServer(out, tmp_path / "exported.log")
    try:
        exported.wait_ready()
        rows = X[::7]
        csv = exported.invoke(_csv(rows), "text/csv")
        assert csv.status_code == 200, csv.text
        assert csv.headers["Content-Type"] == "application/json"
        predictions = csv.json()["predictions"]
        assert [p["predicted_label"] for p in predictions] == forest.predict(rows).tolist()
        np.testing.assert_allclose([p["score"] for p in predictions], forest.predict_proba(rows), atol=1e-5)

        one = exported.invoke("6.3,3.3,6.0,2.5", "text/csv")
        [single] = one.json()["predictions"]
        assert single["predicted_label"] == int(forest.predict([[6.3, 3.3, 6.0, 2.5]])[0])

        body = json.dumps({"instances": rows.tolist()})
        as_json = exported.invoke(body, "application/json")
        assert as_json.status_code == 200 and as_json.json() == csv.json()

        as_csv = exported.invoke(body, "application/json", accept="text/csv")
        assert as_csv.status_code == 200 and as_csv.headers["Content-Type"] == "text/csv"
        labels = [int(line.split(",")[0]) for line in as_csv.text.splitlines()]
        assert labels == forest.predict(rows).tolist()

        wrong = exported.invoke("1,2,3", "text/csv")
        assert wrong.status_code == 400 and "takes 4 features per row; got 3" in wrong.text
        assert exported.invoke(b"\x89PNG", "image/png").status_code == 415
        assert requests.get(f"{exported.url}/nowhere", timeout=5).status_code == 404
    finally:
        code = exported.stop()
    assert code == 0, exported.log.read_text()


def test_export_refuses_a_non_empty_folder(hp: Server, forest_model: str, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _export(hp, "forest", out)
    assert result.returncode == 2
    assert "is not empty (use --force to write over it)" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    forced = _export(hp, "forest", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "keep.txt").read_text() == "mine" and (out / "model.onnx").is_file()


def test_export_of_a_model_without_model_onnx(hp: Server, tmp_path: Path) -> None:
    _register(hp, "no-onnx", _pack(tmp_path, {"model.pkl": b"pickled", "code/inference.py": b"x = 1\n"}))
    out = tmp_path / "out"
    result = _export(hp, "no-onnx", out)
    assert result.returncode == 2
    assert NO_ONNX in " ".join(result.stderr.split())
    assert not out.exists() or not any(out.iterdir())
    assert not list(tmp_path.glob(".homeport-export-*"))  # the work folder is gone


def test_export_of_an_unknown_model(hp: Server, tmp_path: Path) -> None:
    result = _export(hp, "no-such-model", tmp_path / "out")
    assert result.returncode == 2
    assert 'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model"' in " ".join(
        result.stderr.split()
    )
    assert not (tmp_path / "out").exists()


def test_export_of_an_unknown_format(hp: Server, tmp_path: Path) -> None:
    result = _export(hp, "forest", tmp_path / "out", "--format", "pmml")
    assert result.returncode == 2 and "unknown format 'pmml'" in result.stderr


def test_export_without_a_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "homeport"), "export", "forest", "--out", str(tmp_path / "o"),
         "--endpoint-url", url, "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot reach Homeport at {url}" in " ".join(result.stderr.split())


def test_model_onnx_is_found_at_the_top_or_once_below(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "model.onnx").write_bytes(b"x")
    assert find_model_onnx(tmp_path) == tmp_path / "a" / "b" / "model.onnx"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "model.onnx").write_bytes(b"y")
    assert find_model_onnx(tmp_path) is None  # two candidates: neither is taken
    (tmp_path / "model.onnx").write_bytes(b"z")
    assert find_model_onnx(tmp_path) == tmp_path / "model.onnx"


def test_image_name_is_a_docker_repository_name() -> None:
    assert image_name("Iris-Tree") == "iris-tree"
    assert image_name("--") == "onnx-model"
