"""``homeport image`` add/ls/rm through Typer's CliRunner: output, JSON and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homeport.cli.images import app
from homeport.config import Settings
from homeport.images.registry import ImageRegistry
from homeport.images.venvs import VenvCache

DECISION_TREES = Path(__file__).resolve().parents[2] / "examples" / "decision_trees"

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "home"


def registry_at(data_dir: Path) -> ImageRegistry:
    settings = Settings(data_dir=data_dir)
    return ImageRegistry(settings.images_dir, VenvCache(settings.venvs_dir))


def test_add_ls_rm(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOMEPORT_VENV_CACHE", raising=False)  # venvs then live in the data dir
    added = runner.invoke(
        app,
        [
            "add",
            "decision-trees:v1",
            str(DECISION_TREES),
            "--env",
            "PYTHONUNBUFFERED=TRUE",
            "-e",
            "GREETING=a=b",
            "--workdir",
            "/opt/program",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("Added decision-trees:v1 (at /opt/program, venv ")
    image = registry_at(data_dir).resolve("decision-trees:v1")
    assert image.env == {"PYTHONUNBUFFERED": "TRUE", "GREETING": "a=b"}
    assert image.workdir == "/opt/program"
    assert image.venv is not None and image.venv.parent == data_dir / "venvs"

    listed = runner.invoke(app, ["ls", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "TAG", "AT", "VENV", "CREATED"]
    assert row.split()[:4] == ["decision-trees", "v1", "/opt/program", image.venv.name[:12]]

    removed = runner.invoke(app, ["rm", "decision-trees:v1", "--data-dir", str(data_dir)])
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.strip() == "Removed decision-trees:v1"
    assert registry_at(data_dir).list() == []


def test_ls_json(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "prog"
    folder.mkdir()
    (folder / "train").write_text("x")
    for args in (["b-algo", "--tag", "t2"], ["a-algo", "--at", "/opt/ml/code"]):
        result = runner.invoke(app, ["add", args[0], str(folder), *args[1:], "--data-dir", str(data_dir)])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ls", "--json", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    images = json.loads(result.stdout)
    assert [(i["name"], i["tag"], i["at"]) for i in images] == [
        ("a-algo", "latest", "/opt/ml/code"),
        ("b-algo", "t2", "/opt/program"),
    ]
    first = images[0]
    assert first["reference"] == "a-algo:latest"
    assert first["workdir"] is None and first["env"] == {}
    assert Path(first["root"]).is_dir() and Path(first["venv"]).is_dir()
    assert first["created"].endswith("Z")


def test_ls_empty(data_dir: Path) -> None:
    result = runner.invoke(app, ["ls", "--data-dir", str(data_dir)])
    assert result.exit_code == 0
    assert "No local images" in result.stdout
    as_json = runner.invoke(app, ["ls", "--json", "--data-dir", str(data_dir)])
    assert json.loads(as_json.stdout) == []


def test_data_dir_defaults_to_homeport_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("HOMEPORT_HOME", str(data_dir))
    result = runner.invoke(app, ["add", "algo", str(DECISION_TREES)])
    assert result.exit_code == 0, result.output
    assert registry_at(data_dir).resolve("algo").reference == "algo:latest"


def test_add_with_requirements_shows_pip_progress(data_dir: Path, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    # Fails fast and offline, but only after pip has run: its output must reach the user.
    requirements.write_text("--no-index\nhomeport-no-such-package-xyz==1.0\n")
    result = runner.invoke(
        app, ["add", "algo", str(DECISION_TREES), "-r", str(requirements), "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 1
    assert "pip could not install the requirements" in result.stderr
    assert "homeport-no-such-package-xyz" in result.stderr
    assert result.stdout == ""
    assert registry_at(data_dir).list() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "Bad_Name", str(DECISION_TREES)], "Invalid image name"),
        (["add", "algo:.bad", str(DECISION_TREES)], "Invalid image tag"),
        (["add", "algo:v1", str(DECISION_TREES), "--tag", "v2"], "Conflicting tags"),
        (["add", "algo", "/nonexistent/folder"], "does not exist"),
        (["add", "algo", str(DECISION_TREES), "--at", "/opt/ml/model"], "SageMaker mounts"),
        (["add", "algo", str(DECISION_TREES), "--at", "relative"], "absolute path"),
        (["add", "algo", str(DECISION_TREES), "--env", "NOEQUALS"], "KEY=VALUE"),
        (["add", "algo", str(DECISION_TREES), "--env", "1X=y"], "environment variable name"),
        (["add", "algo", str(DECISION_TREES), "-r", "/nonexistent.txt"], "requirements file"),
    ],
)
def test_bad_input_exits_2(data_dir: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_rm_unknown_exits_1(data_dir: Path) -> None:
    result = runner.invoke(app, ["rm", "ghost:v9", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "Image 'ghost:v9' is not available" in result.stderr
    assert "homeport image add" in result.stderr


def test_usage_errors_exit_2(data_dir: Path) -> None:
    assert runner.invoke(app, ["add", "only-a-name"]).exit_code == 2
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2
