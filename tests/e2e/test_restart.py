"""Crash and restart: kill -9 the server, start it again, and nothing is lost or left running."""

from __future__ import annotations

import socket
import tarfile
import time
from pathlib import Path

import docker
from e2e_support import SCRIPTED, job_processes, start_server, training_request, wait_for, wait_secondary

from homeport.runtimes.container import scope_for


def test_kill9_mid_training_leaves_no_orphans_and_fails_the_job(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--stop-grace", "2")
    try:
        srv.add_image("scripted", SCRIPTED)
        sm = srv.sagemaker()
        sm.create_training_job(
            **training_request("orphan-check", HyperParameters={"behaviour": "spawn", "seconds": "300"})
        )
        wait_secondary(sm, "orphan-check", "Training")
        deadline = time.time() + 20
        while len(job_processes("orphan-check")) < 3 and time.time() < deadline:
            time.sleep(0.1)
        assert len(job_processes("orphan-check")) >= 3  # train + two detached `sleep 300`
        srv.kill9()
        deadline = time.time() + 10
        while job_processes("orphan-check") and time.time() < deadline:
            time.sleep(0.1)
        assert job_processes("orphan-check") == []

        srv.start()
        desc = sm.describe_training_job(TrainingJobName="orphan-check")
        assert desc["TrainingJobStatus"] == "Failed"
        assert "server stopped while this job was in secondary status Training" in desc["FailureReason"]
        assert desc["SecondaryStatusTransitions"][-1]["Status"] == "Failed"
    finally:
        srv.stop()
        for pid in job_processes("orphan-check"):
            import os
            import signal

            os.kill(pid, signal.SIGKILL)


def test_kill9_during_upload_completes_the_upload_after_restart(tmp_path: Path) -> None:
    # A big random model makes packaging slow enough to kill the server mid-upload.
    srv = start_server(tmp_path, "--compression-level", "9")
    try:
        srv.add_image("scripted", SCRIPTED)
        sm = srv.sagemaker()
        sm.create_training_job(
            **training_request("upload-check", HyperParameters={"behaviour": "big-model", "size_mb": "150"})
        )
        wait_secondary(sm, "upload-check", "Uploading", timeout=120)
        srv.kill9()
        srv.start()
        desc = wait_for(sm, "upload-check", timeout=180)
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        dest = tmp_path / "model.tar.gz"
        srv.cp(desc["ModelArtifacts"]["S3ModelArtifacts"], str(dest))
        with tarfile.open(dest) as tar:
            member = tar.getmember(next(n for n in tar.getnames() if n.endswith("big.bin")))
            assert member.size == 150 * 1024 * 1024
    finally:
        srv.stop()


def test_queued_job_runs_after_restart(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--max-concurrent-jobs", "1")
    try:
        srv.add_image("scripted", SCRIPTED)
        sm = srv.sagemaker()
        sm.create_training_job(
            **training_request("blocker", HyperParameters={"behaviour": "sleep", "seconds": "300"})
        )
        wait_secondary(sm, "blocker", "Training")
        sm.create_training_job(**training_request("waiting", HyperParameters={"behaviour": "succeed"}))
        assert sm.describe_training_job(TrainingJobName="waiting")["SecondaryStatus"] == "Pending"
        srv.kill9()
        srv.start()
        assert wait_for(sm, "blocker")["TrainingJobStatus"] == "Failed"
        waiting = wait_for(sm, "waiting")
        assert waiting["TrainingJobStatus"] == "Completed", waiting.get("FailureReason")
    finally:
        srv.stop()


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        result = srv.homeport(
            "server", "--port", "1", "--data-dir", str(srv.data_dir), check=False, timeout=60
        )
        assert result.returncode == 2
        assert "already using the data dir" in result.stderr
    finally:
        srv.stop()


def test_docker_kill9_leftovers_are_swept_and_nothing_is_duplicated(tmp_path: Path) -> None:
    """On the docker runtime containers outlive a crashed server; the next start removes them,
    fails the job that was training and brings the endpoint back with exactly its one instance."""
    from test_endpoints import ECHO, call, echo_model, endpoint, in_service, runtime, variant

    srv = start_server(tmp_path, "--stop-grace", "2", "--instance-stop-grace", "2", runtime="docker")
    engine = docker.from_env()
    scope = scope_for(srv.data_dir, socket.gethostname())

    def ours(**labels: str) -> list[dict[str, object]]:
        wanted = [f"io.homeport.scope={scope}", *(f"io.homeport.{k}={v}" for k, v in labels.items())]
        found: list[dict[str, object]] = engine.api.containers(all=True, filters={"label": wanted})
        return found

    try:
        srv.add_image("scripted", SCRIPTED)
        srv.add_image("echo-flask", ECHO)
        sm = srv.sagemaker()
        sm.create_training_job(
            **training_request("crash-train", HyperParameters={"behaviour": "sleep", "seconds": "300"})
        )
        echo_model(sm, srv, tmp_path, "echo-crash", "vc")
        endpoint(sm, "ep-crash", [variant("echo-crash")])
        in_service(sm, "ep-crash")
        wait_secondary(sm, "crash-train", "Training")
        assert len(ours(kind="training-job", resource="crash-train")) == 1
        (before,) = ours(kind="endpoint", resource="ep-crash")
        srv.kill9()
        assert len(ours()) == 2  # the engine keeps them running without the server

        srv.start()
        desc = wait_for(sm, "crash-train")
        assert desc["TrainingJobStatus"] == "Failed"
        assert "server stopped while this job was in secondary status Training" in desc["FailureReason"]
        assert ours(kind="training-job") == []
        in_service(sm, "ep-crash")
        (after,) = ours(kind="endpoint", resource="ep-crash")  # one instance, not two
        assert after["Id"] != before["Id"]
        assert call(runtime(srv), "ep-crash")[0]["model"] == "vc"
        sm.delete_endpoint(EndpointName="ep-crash")
        deadline = time.time() + 30
        while ours() and time.time() < deadline:
            time.sleep(0.2)
        assert ours() == []
    finally:
        srv.stop()
        for entry in ours():
            engine.api.remove_container(entry["Id"], force=True)
