"""Fixtures for the runtime tests: a venv made once per session, and a Sandbox per test."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import Sandbox, kill_leftovers


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


@pytest.fixture
def sandbox(tmp_path: Path, venv: Path) -> Iterator[Sandbox]:
    box = Sandbox(base=tmp_path, marker=f"hpt-{uuid.uuid4().hex}", venv=venv)
    yield box
    for run in box.runs:
        run.kill()
        run.output.close()
    kill_leftovers(box.marker)
