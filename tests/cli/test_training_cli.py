"""``homeport train / ls / describe / stop / logs`` against a real server, in process and as
subprocesses; what the CLI creates is what boto3 sees."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
from e2e_support import HOMEPORT, Server, free_port, training_request, wait_for, wait_secondary
from typer.testing import CliRunner

from homeport.cli.main import app

runner = CliRunner()


def cli(server: Server, *args: str, input: str | None = None) -> Any:
    return runner.invoke(app, [*args, "--endpoint-url", server.url], input=input)


def test_train_uploads_a_local_channel_follows_phases_and_logs(
    server: Server, sm: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / "a.csv").write_text("1,2\n")
    (data / "nested" / "b.csv").write_text("3,4\n")
    result = cli(server, "train", "cli-train", "--image", "scripted", "--channel", f"train={data}",
                 "--hp", "behaviour=succeed", "--hp", "extra=x=y", "--content-type", "text/csv")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "epoch 2 train-loss" in result.stdout and "contract recorded" in result.stdout  # the log tail
    for phase in ("» Starting", "» Downloading", "» Training", "» Uploading", "» Completed"):
        assert phase in result.stderr
    assert "model s3://homeport/cli-train/output/model.tar.gz" in result.stderr
    desc = sm.describe_training_job(TrainingJobName="cli-train")
    assert desc["HyperParameters"] == {"behaviour": "succeed", "extra": "x=y"}
    source = desc["InputDataConfig"][0]
    assert source["DataSource"]["S3DataSource"]["S3Uri"] == "s3://homeport/cli-train/input/train"
    assert source["ContentType"] == "text/csv"
    s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="homeport", Prefix="cli-train/input/")["Contents"]]
    assert sorted(keys) == ["cli-train/input/train/a.csv", "cli-train/input/train/nested/b.csv"]
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == "s3://homeport/cli-train/output/model.tar.gz"


def test_train_json_is_the_final_description(server: Server) -> None:
    result = cli(server, "train", "cli-json", "--image", "scripted", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)  # stdout holds the JSON document only
    assert doc["TrainingJobName"] == "cli-json" and doc["TrainingJobStatus"] == "Completed"
    assert doc["CreationTime"].endswith("+00:00") and "T" in doc["CreationTime"]  # ISO 8601


def test_failed_job_exits_1_with_the_failure_reason(server: Server) -> None:
    result = cli(server, "train", "cli-fails", "--image", "scripted", "--hp", "behaviour=fail")
    assert result.exit_code == 1
    assert "error: TrainingJobFailed: ValueError: max_depth must be positive" in result.stderr


def test_stopped_job_exits_3(server: Server, sm: Any) -> None:
    waiting = subprocess.Popen(
        [
            HOMEPORT,
            "train",
            "cli-stopped",
            "--image",
            "scripted",
            "--hp",
            "behaviour=sleep",
            "--endpoint-url",
            server.url,
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server.env(),
    )
    try:
        deadline = time.monotonic() + 30
        while not sm.list_training_jobs(NameContains="cli-stopped")["TrainingJobSummaries"]:
            assert time.monotonic() < deadline and waiting.poll() is None
            time.sleep(0.1)
        wait_secondary(sm, "cli-stopped", "Training")
        stop = cli(server, "stop", "job", "cli-stopped", "--wait", "--json")
        assert stop.exit_code == 0, stop.stderr
        assert json.loads(stop.stdout)["TrainingJobStatus"] == "Stopped"
        out, errors = waiting.communicate(timeout=60)
        assert waiting.returncode == 3, errors
        assert "sleeping" in out and "cli-stopped: Stopped" in errors
    finally:
        if waiting.poll() is None:
            waiting.kill()


def test_ls_and_describe_jobs(server: Server, base_job: str) -> None:
    table = cli(server, "ls", "jobs")
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if base_job in line)
    assert "Completed" in row
    # every page is followed: one job per List request still lists them all
    paged = json.loads(cli(server, "ls", "jobs", "--page-size", "1", "--json").stdout)
    whole = json.loads(cli(server, "ls", "jobs", "--json").stdout)
    assert len(paged) == len(whole) >= 2 and base_job in {j["TrainingJobName"] for j in paged}
    only = json.loads(cli(server, "ls", "jobs", "--name-contains", "base", "--json").stdout)
    assert [j["TrainingJobName"] for j in only] == [base_job]
    pretty = cli(server, "describe", "job", base_job)
    assert pretty.exit_code == 0 and "TrainingJobStatus" in pretty.stdout and "Completed" in pretty.stdout
    doc = json.loads(cli(server, "describe", "training-job", base_job, "--json").stdout)
    assert doc["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://cli-out/{base_job}/output/model.tar.gz"


def test_error_classes_have_their_exit_codes(server: Server, base_job: str) -> None:
    missing = cli(server, "describe", "job", "no-such-job")
    assert missing.exit_code == 4
    assert missing.stderr.startswith("error: ValidationException: Requested resource not found.")
    assert cli(server, "describe", "model", "no-such-model").exit_code == 4
    assert cli(server, "logs", "no-such-job").exit_code == 4
    bad = cli(server, "train", "cli-bad", "--image", "scripted", "--instance-type", "ml.bogus")
    assert bad.exit_code == 2 and "error: ValidationException: 1 validation error" in bad.stderr
    assert cli(server, "train", "cli-bad", "--image", "scripted", "--hp", "novalue").exit_code == 2
    assert cli(server, "ls", "gadgets").exit_code == 2
    assert cli(server, "stop", "model", "x").exit_code == 2
    again = cli(server, "train", base_job, "--image", "scripted")
    assert again.exit_code == 6 and "error: ResourceInUse:" in again.stderr
    gone = runner.invoke(app, ["ls", "jobs", "--endpoint-url", f"http://127.0.0.1:{free_port()}"])
    assert gone.exit_code == 5 and gone.stderr.startswith("error: ServerUnreachable:")
    stopped_already = cli(server, "stop", "job", base_job)
    assert stopped_already.exit_code == 2 and "status Completed" in stopped_already.stderr


def test_logs_through_the_cloudwatch_api(server: Server, base_job: str) -> None:
    plain = cli(server, "logs", base_job)
    assert plain.exit_code == 0
    assert plain.stdout.splitlines()[0] == "contract recorded" and "done" in plain.stdout
    lines = [json.loads(line) for line in cli(server, "logs", base_job, "--json").stdout.splitlines()]
    assert lines[0]["message"] == "contract recorded"
    assert lines[0]["logStreamName"].startswith(f"{base_job}/algo-1-") and "T" in lines[0]["timestamp"]


def test_logs_follow_prints_lines_and_ends_with_the_job(server: Server, sm: Any) -> None:
    sm.create_training_job(
        **training_request("cli-follow", HyperParameters={"behaviour": "sleep", "seconds": "3"})
    )
    started = time.monotonic()
    follower = subprocess.run(
        [HOMEPORT, "logs", "cli-follow", "-f"],
        capture_output=True,
        text=True,
        env={**server.env(), "HOMEPORT_URL": server.url},
        timeout=60,
    )
    assert follower.returncode == 0, follower.stderr
    assert follower.stdout.splitlines()[:2] == ["contract recorded", "sleeping"]
    assert wait_for(sm, "cli-follow")["TrainingJobStatus"] == "Completed"
    assert time.monotonic() - started >= 2  # it waited for the job rather than printing and leaving
