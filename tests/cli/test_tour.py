"""The README's tour (scripts/demo.sh): the built-in XGBoost trained, deployed, invoked and
batch-run on iris through the CLI, then cleaned up — on its own server and data dir."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from e2e_support import ROOT, VENV_CACHE, client_env, free_port


@pytest.mark.timeout(900)  # the first run builds the built-in XGBoost's venv (cached afterwards)
def test_the_tour_runs_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    env = client_env(f"http://127.0.0.1:{port}")
    env.update(
        HOMEPORT_DEMO_SKIP_SETUP="1",
        HOMEPORT_DEMO_PORT=str(port),
        HOMEPORT_HOME=str(tmp_path / "home"),
        HOMEPORT_VENV_CACHE=os.environ.get("HOMEPORT_VENV_CACHE", str(VENV_CACHE)),
        TMPDIR=str(tmp_path),
    )
    tour = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh")], capture_output=True, text=True, env=env, timeout=850
    )
    assert tour.returncode == 0, tour.stdout[-3000:] + tour.stderr[-3000:]
    out = tour.stdout + tour.stderr
    assert "Completed" in out and "InService" in out
    accuracy = re.search(r"accuracy (\d+)/30", tour.stdout)
    assert accuracy is not None and int(accuracy.group(1)) >= 27, tour.stdout[-2000:]
    invoked = tour.stdout.split("(five flowers → class indices)", 1)[1].split("--\n", 1)[1].splitlines()[0]
    assert len(invoked.split(",")) == 5 and set(invoked.split(",")) <= {"0.0", "1.0", "2.0"}
    assert re.search(r"removed model iris-\d{8}-\d{6}", out)
    assert "removed endpoint-config" in out
