"""End-to-end fixtures: one session server with the scripted test image, and its clients.

Helpers live in ``e2e_support`` (a uniquely named module: every test folder has a conftest).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import RUNTIMES, SCRIPTED, Server, start_server


@pytest.fixture(scope="session", params=RUNTIMES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per runtime: every test that uses it runs on the process and the docker runtime."""
    srv = start_server(
        tmp_path_factory.mktemp(f"homeport-{request.param}"),
        "--stop-grace",
        "3",
        "--instance-stop-grace",
        "3",
        runtime=request.param,
    )
    srv.add_image("scripted", SCRIPTED)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir / "objects", ignore_errors=True)


@pytest.fixture(scope="session")
def sm(server: Server) -> Any:
    return server.sagemaker()


@pytest.fixture(scope="session")
def data_bucket(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """s3://data/... holding a small training set in nested folders."""
    src = tmp_path_factory.mktemp("train-data")
    (src / "part-a.csv").write_text("1,2,3\n4,5,6\n")
    (src / "nested").mkdir()
    (src / "nested" / "part-b.csv").write_text("7,8,9\n")
    server.cp(str(src), "s3://data/train", "--recursive")
    return "data"
