"""Fixtures for the homeport_toolkit tests (helpers are in ``toolkit_support``).

The toolkit is a top-level package inside the containers (``/opt/program/homeport_toolkit``), so
the tests import it the same way: its parent folder goes on ``sys.path`` (and on ``PYTHONPATH``
for the processes they start). ``base_dir`` points ``SAGEMAKER_BASE_DIR`` at a fresh folder.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolkit_support import TOOLKIT_ENV, TOOLKIT_PARENT

if str(TOOLKIT_PARENT) not in sys.path:
    sys.path.insert(0, str(TOOLKIT_PARENT))


@pytest.fixture
def base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``/opt/ml`` stand-in, set as SAGEMAKER_BASE_DIR (other toolkit variables unset)."""
    for name in TOOLKIT_ENV:
        monkeypatch.delenv(name, raising=False)
    base = tmp_path / "ml"
    (base / "model").mkdir(parents=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    return base


@pytest.fixture
def module_name() -> Iterator[str]:
    """A unique module name for a handler written by a test; forgotten afterwards."""
    name = f"handler_{uuid.uuid4().hex[:12]}"
    yield name
    sys.modules.pop(name, None)
