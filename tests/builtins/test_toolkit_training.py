"""Script mode end to end: homeport_toolkit.training.main() in a real process on a temp /opt/ml."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from homeport_toolkit import files
from homeport_toolkit.files import UnsafeArchive
from toolkit_support import toolkit_env

TRAIN_PY = """
import json, os, sys
import homeport_toolkit  # importable in the user's process through PYTHONPATH

model_dir = os.environ["SM_MODEL_DIR"]
with open(os.path.join(model_dir, "model.txt"), "w") as f:
    f.write("trained")
record = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("SM_") or k in (
        "SAGEMAKER_JOB_NAME", "CURRENT_HOST", "SAGEMAKER_REGION")},
}
with open(os.path.join(model_dir, "record.json"), "w") as f:
    json.dump(record, f)
print("epochs", os.environ["SM_HP_EPOCHS"], "args", " ".join(sys.argv[1:]))
"""

FAILING_PY = """
import sys
print("about to fail")
print("Traceback (most recent call last):", file=sys.stderr)
print("ValueError: no training data in /opt/ml/input/data/train", file=sys.stderr)
sys.exit(3)
"""


def sourcedir(path: Path, members: dict[str, str]) -> Path:
    """A sourcedir.tar.gz as the SDK makes it: files at the archive's top level."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def configure(base: Path, hyperparameters: dict[str, Any], channels: tuple[str, ...] = ("train",)) -> None:
    config = base / "input" / "config"
    config.mkdir(parents=True)
    encoded = {k: json.dumps(v) for k, v in hyperparameters.items()}
    (config / "hyperparameters.json").write_text(json.dumps(encoded))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps({c: {"TrainingInputMode": "File"} for c in channels})
    )
    for channel in channels:
        (base / "input" / "data" / channel).mkdir(parents=True)
    (base / "output").mkdir(parents=True, exist_ok=True)


def run_train(base: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from homeport_toolkit.training import main; sys.exit(main())"],
        env=toolkit_env(SAGEMAKER_BASE_DIR=str(base), TRAINING_JOB_NAME="job-1", **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_script_mode_end_to_end(base_dir: Path, tmp_path: Path) -> None:
    archive = sourcedir(
        tmp_path / "sourcedir.tar.gz",
        {"train.py": TRAIN_PY, "requirements.txt": "numpy\n", "lib/helper.py": "X = 1\n"},
    )
    configure(
        base_dir,
        {
            "epochs": 3,
            "name": "abc",
            "b": 0.5,
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": f"file://{archive}",  # as SDK local mode writes it
            "sagemaker_job_name": "job-1",
            "sagemaker_region": "us-east-1",
            "sagemaker_container_log_level": 20,
        },
    )
    result = run_train(base_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "epochs 3 args -b 0.5 --epochs 3 --name abc" in result.stdout
    assert "Requirement already satisfied: numpy" in result.stdout  # requirements.txt was installed
    assert (base_dir / "code" / "lib" / "helper.py").is_file()
    assert (base_dir / "model" / "model.txt").read_text() == "trained"
    assert (base_dir / "output" / "success").is_file()
    assert not (base_dir / "output" / "failure").exists()
    record = json.loads((base_dir / "model" / "record.json").read_text())
    assert record["argv"] == ["-b", "0.5", "--epochs", "3", "--name", "abc"]
    assert record["cwd"] == str(base_dir / "code")
    env = record["env"]
    assert env["SM_HPS"] == '{"b":0.5,"epochs":3,"name":"abc"}'
    assert env["SM_HP_NAME"] == "abc" and env["SM_HP_B"] == "0.5"
    assert env["SM_CHANNEL_TRAIN"] == str(base_dir / "input" / "data" / "train")
    assert env["SM_MODULE_DIR"] == f"file://{archive}"
    assert env["SM_USER_ARGS"] == '["-b","0.5","--epochs","3","--name","abc"]'
    assert (env["SAGEMAKER_JOB_NAME"], env["CURRENT_HOST"], env["SAGEMAKER_REGION"]) == (
        "job-1",
        "algo-1",
        "us-east-1",
    )
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "job-1"


def test_source_from_s3(base_dir: Path, tmp_path: Path, moto_endpoint: str, s3_client: Any) -> None:
    bucket = f"src-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=bucket)
    archive = sourcedir(tmp_path / "sourcedir.tar.gz", {"train.py": TRAIN_PY})
    s3_client.upload_file(str(archive), bucket, "job/source/sourcedir.tar.gz")
    uri = f"s3://{bucket}/job/source/sourcedir.tar.gz"
    configure(base_dir, {"epochs": 1, "sagemaker_program": "train.py", "sagemaker_submit_directory": uri})
    result = run_train(
        base_dir,
        S3_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((base_dir / "model" / "record.json").read_text())["argv"] == ["--epochs", "1"]


def test_shell_entry_point_from_a_folder(base_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "run.sh").write_text('#!/bin/sh\necho "args: $*" > "$SM_MODEL_DIR/args.txt"\n')
    configure(
        base_dir,
        {"sagemaker_program": "run.sh", "sagemaker_submit_directory": str(source), "label": "two words"},
    )
    result = run_train(base_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (base_dir / "model" / "args.txt").read_text() == "args: --label two words\n"


def test_failing_script_writes_the_failure_file_and_returns_its_code(base_dir: Path, tmp_path: Path) -> None:
    archive = sourcedir(tmp_path / "sourcedir.tar.gz", {"train.py": FAILING_PY})
    configure(base_dir, {"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive), "x": 1})
    result = run_train(base_dir)
    assert result.returncode == 3
    assert "about to fail" in result.stdout
    assert "ValueError: no training data" in result.stderr  # streamed through
    failure = (base_dir / "output" / "failure").read_text()
    assert failure.startswith('AlgorithmError: ExecuteUserScriptError:\nExitCode 3\nErrorMessage "Traceback')
    assert "ValueError: no training data in /opt/ml/input/data/train" in failure
    assert failure.endswith(f'Command "{sys.executable} -- train.py -x 1", exit code: 3')
    assert len(failure) <= 1024
    assert not (base_dir / "output" / "success").exists()


def test_a_failure_file_written_by_the_script_is_kept(base_dir: Path, tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('mine')\n"
        "sys.exit(1)\n"
    )
    archive = sourcedir(tmp_path / "sourcedir.tar.gz", {"train.py": script})
    configure(base_dir, {"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive)})
    assert run_train(base_dir).returncode == 1
    assert (base_dir / "output" / "failure").read_text() == "mine"


def test_long_stderr_is_cut_to_its_end(base_dir: Path, tmp_path: Path) -> None:
    script = "import sys\nfor i in range(500):\n    print(f'line {i}', file=sys.stderr)\nsys.exit(2)\n"
    archive = sourcedir(tmp_path / "sourcedir.tar.gz", {"train.py": script})
    configure(base_dir, {"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive)})
    assert run_train(base_dir).returncode == 2
    failure = (base_dir / "output" / "failure").read_text()
    assert len(failure) <= 1024
    assert "line 499" in failure and "line 0\n" not in failure
    assert failure.endswith("exit code: 2")


def test_archive_with_parent_member_is_refused(base_dir: Path, tmp_path: Path) -> None:
    archive = sourcedir(tmp_path / "evil.tar.gz", {"train.py": TRAIN_PY, "../escaped.py": "X = 1\n"})
    configure(base_dir, {"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive)})
    result = run_train(base_dir)
    assert result.returncode == 1
    failure = (base_dir / "output" / "failure").read_text()
    assert failure.startswith("AlgorithmError: archive member '../escaped.py' escapes the destination")
    assert not (base_dir / "escaped.py").exists()
    assert not (base_dir / "model" / "model.txt").exists()


def test_unsafe_links_are_refused(tmp_path: Path) -> None:
    def archive_with(info: tarfile.TarInfo) -> Path:
        path = tmp_path / f"{uuid.uuid4().hex}.tar"
        with tarfile.open(path, "w") as tar:
            tar.addfile(info)
        return path

    outside = tarfile.TarInfo("link")
    outside.type, outside.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    absolute = tarfile.TarInfo("abs")
    absolute.type, absolute.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../outside"
    rooted = tarfile.TarInfo("/etc/cron.d/x")
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    for info in (outside, absolute, hard, rooted, fifo):
        with pytest.raises(UnsafeArchive):
            files.safe_extract(archive_with(info), tmp_path / "dest")
    inside = tarfile.TarInfo("sub/link")
    inside.type, inside.linkname = tarfile.SYMTYPE, "../target.txt"
    files.safe_extract(archive_with(inside), tmp_path / "ok")
    assert os.readlink(tmp_path / "ok" / "sub" / "link") == "../target.txt"


def test_missing_entry_point_and_unsafe_names(base_dir: Path, tmp_path: Path) -> None:
    archive = sourcedir(tmp_path / "sourcedir.tar.gz", {"train.py": TRAIN_PY})
    configure(base_dir, {"sagemaker_program": "other.py", "sagemaker_submit_directory": str(archive)})
    result = run_train(base_dir)
    assert result.returncode == 1
    assert "'other.py' is not in the source folder" in (base_dir / "output" / "failure").read_text()

    second = tmp_path / "second"
    configure(second, {"sagemaker_program": "-c import os", "sagemaker_submit_directory": str(archive)})
    assert run_train(second).returncode == 1
    assert "cannot be used" in (second / "output" / "failure").read_text()


def test_sigterm_is_forwarded_to_the_script(base_dir: Path, tmp_path: Path) -> None:
    script = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    archive = sourcedir(tmp_path / "sourcedir.tar.gz", {"train.py": script})
    configure(base_dir, {"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive)})
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from homeport_toolkit.training import main; sys.exit(main())"],
        env=toolkit_env(SAGEMAKER_BASE_DIR=str(base_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "started" not in (process.stdout.readline() or "started"):
            pass
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "ExitCode 143" in (base_dir / "output" / "failure").read_text()
