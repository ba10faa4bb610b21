"""CLI fixtures: one real server (process runtime) with the scripted training image, a
standard-library serving image and one completed training job, shared by the module tests.

The e2e helpers (``e2e_support``) live in tests/e2e; that folder is put on ``sys.path`` here
as pytest does for tests/e2e's own conftest.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from e2e_support import SCRIPTED, Server, start_server, training_request, wait_for  # noqa: E402

WEIGHTS_SERVE = Path(__file__).parent / "images" / "weights_serve"
BASE_JOB = "cli-base"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("homeport-cli"),
        "--stop-grace",
        "2",
        "--instance-stop-grace",
        "2",
        runtime="process",
    )
    try:
        srv.add_image("scripted", SCRIPTED)
        srv.add_image("weights-serve", WEIGHTS_SERVE)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def sm(server: Server) -> Any:
    return server.sagemaker()


@pytest.fixture(scope="session")
def base_job(server: Server, sm: Any) -> str:
    """A completed scripted job whose model holds sub/weights.txt = w=42."""
    sm.create_training_job(**training_request(BASE_JOB, OutputDataConfig={"S3OutputPath": "s3://cli-out"}))
    assert wait_for(sm, BASE_JOB)["TrainingJobStatus"] == "Completed"
    return BASE_JOB
