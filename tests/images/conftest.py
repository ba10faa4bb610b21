"""Shared fixtures for the local-image tests: one venv cache per session (venvs are slow to build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.images.registry import ImageRegistry
from homeport.images.venvs import VenvCache


@pytest.fixture(scope="session")
def shared_venvs(tmp_path_factory: pytest.TempPathFactory) -> VenvCache:
    """A cache reused by every test that only needs venvs, not a fresh cache."""
    return VenvCache(tmp_path_factory.mktemp("shared-venvs"))


@pytest.fixture
def registry(tmp_path: Path, shared_venvs: VenvCache) -> ImageRegistry:
    return ImageRegistry(tmp_path / "images", shared_venvs)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """A small image folder: an executable entry point, a module and a data file."""
    folder = tmp_path / "program"
    folder.mkdir()
    train = folder / "train"
    train.write_text("#!/usr/bin/env python\nprint('training')\n")
    train.chmod(0o755)
    (folder / "helper.py").write_text("VALUE = 1\n")
    (folder / "data").mkdir()
    (folder / "data" / "table.csv").write_text("a,b\n1,2\n")
    return folder
