"""``homeport deploy / invoke / transform / rm`` and endpoint logs against a real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_support import HOMEPORT, Server
from typer.testing import CliRunner

from homeport.cli.main import app

runner = CliRunner()


def cli(server: Server, *args: str, input: str | bytes | None = None) -> Any:
    return runner.invoke(app, [*args, "--endpoint-url", server.url], input=input)


@pytest.fixture(scope="module")
def endpoint(server: Server, sm: Any, base_job: str) -> str:
    """The base job's model (w=42) deployed with the standard-library serving image."""
    result = cli(server, "deploy", "cli-ep", "--from-job", base_job, "--image", "weights-serve")
    assert result.exit_code == 0, result.stderr
    assert "cli-ep: InService" in result.stderr.replace("endpoint ", "")
    return "cli-ep"


def test_deploy_creates_what_boto3_sees(sm: Any, endpoint: str, base_job: str) -> None:
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
    model = sm.describe_model(ModelName=endpoint)["PrimaryContainer"]
    assert model["Image"] == "weights-serve"
    assert model["ModelDataUrl"] == f"s3://cli-out/{base_job}/output/model.tar.gz"
    variant = sm.describe_endpoint_config(EndpointConfigName=endpoint)["ProductionVariants"][0]
    assert variant["ModelName"] == endpoint and variant["InitialInstanceCount"] == 1


def test_invoke_body_file_stdin_and_json(server: Server, endpoint: str, tmp_path: Path) -> None:
    body = cli(server, "invoke", endpoint, "--body", "1,2\n3,4")
    assert body.exit_code == 0, body.stderr
    assert body.stdout == "126\n294\n"  # w=42 from the trained model's weights.txt
    request = tmp_path / "rows.csv"
    request.write_text("1,1\n")
    assert cli(server, "invoke", endpoint, "--file", str(request)).stdout == "84\n"
    assert cli(server, "invoke", endpoint, input="0.5,0.5\n").stdout == "42\n"
    doc = json.loads(cli(server, "invoke", endpoint, "--body", "2", "--json").stdout)
    assert doc == {"ContentType": "text/csv", "InvokedProductionVariant": "AllTraffic", "Body": "84\n"}
    as_subprocess = subprocess.run(
        [HOMEPORT, "invoke", endpoint, "--content-type", "text/csv"],
        input=b"1\n2\n",
        capture_output=True,
        env={**server.env(), "HOMEPORT_URL": server.url},
        timeout=30,
    )
    assert as_subprocess.returncode == 0 and as_subprocess.stdout == b"42\n84\n"


def test_invoke_errors(server: Server, endpoint: str) -> None:
    missing = cli(server, "invoke", "no-such-endpoint", "--body", "1")
    assert missing.exit_code == 4 and "error: ValidationError: Endpoint no-such-endpoint" in missing.stderr
    model_error = cli(server, "invoke", endpoint, "--body", "not,numbers")
    assert model_error.exit_code == 1 and "error: ModelError:" in model_error.stderr
    twice = cli(server, "deploy", endpoint, "--image", "weights-serve")
    assert twice.exit_code == 6 and "already existing model" in twice.stderr


def test_endpoint_listing_and_logs(server: Server, endpoint: str) -> None:
    table = cli(server, "ls", "endpoints").stdout
    assert any(endpoint in line and "InService" in line for line in table.splitlines())
    configs = json.loads(cli(server, "ls", "endpoint-configs", "--json").stdout)
    assert endpoint in {c["EndpointConfigName"] for c in configs}
    logs = cli(server, "logs", "--endpoint", endpoint)
    assert logs.exit_code == 0
    assert logs.stdout.startswith("[AllTraffic/") and "serving with w=42" in logs.stdout


def test_transform_create_wait_download_and_follow(
    server: Server, sm: Any, endpoint: str, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "part-1.csv").write_text("1,0\n0,2\n")
    (batch / "part-2.csv").write_text("3\n")
    out = tmp_path / "out"
    result = cli(server, "transform", "cli-batch", "--model", endpoint, "--input", str(batch),
                 "--download", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "2/2" in result.stderr and "3 records" in result.stderr and "cli-batch: Completed" in result.stderr
    assert (out / "part-1.csv.out").read_text() == "42\n84\n"
    assert (out / "part-2.csv.out").read_text() == "126\n"
    desc = sm.describe_transform_job(TransformJobName="cli-batch")
    assert desc["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://homeport/cli-batch/input"
    assert desc["TransformOutput"]["S3OutputPath"] == "s3://homeport/cli-batch/output"
    # the old form, following an existing job, still works (and --json gives its description)
    follow = subprocess.run([HOMEPORT, "transform", "cli-batch", "--endpoint-url", server.url],
                            capture_output=True, text=True, env=server.env(), timeout=60)  # fmt: skip
    assert follow.returncode == 0 and "cli-batch: Completed" in follow.stderr
    doc = json.loads(cli(server, "transform", "cli-batch", "--json").stdout)
    assert doc["TransformJobStatus"] == "Completed"
    assert cli(server, "transform", "no-such-batch").exit_code == 4
    logs = cli(server, "logs", "--transform", "cli-batch")
    assert logs.exit_code == 0 and "answered" in logs.stdout
    listed = cli(server, "ls", "transforms").stdout
    assert any("cli-batch" in line and "Completed" in line for line in listed.splitlines())


def test_rm_endpoint_all_related(server: Server, sm: Any, endpoint: str) -> None:
    removed = cli(server, "rm", "endpoint", endpoint, "--all-related", "--json")
    assert removed.exit_code == 0, removed.stderr
    assert json.loads(removed.stdout)["Removed"] == [
        {"Kind": "endpoint", "Name": endpoint},
        {"Kind": "endpoint-config", "Name": endpoint},
        {"Kind": "model", "Name": endpoint},
    ]
    assert endpoint not in {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    assert endpoint not in {m["ModelName"] for m in sm.list_models()["Models"]}
    assert cli(server, "rm", "model", endpoint).exit_code == 4
    assert cli(server, "rm", "job", "anything").exit_code == 2
