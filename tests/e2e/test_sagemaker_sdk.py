"""The real SageMaker Python SDK, unchanged, against a live Homeport server.

Each flow is a script under ``tests/e2e/sdk/`` run by the SDK's own venv (``.venv-sdk2``:
sagemaker 2.257.*, ``.venv-sdk3``: sagemaker 3.x; made by ``scripts/sdk-venvs.sh``, which
this module runs when one is missing). The script sees only what a user would set:
``AWS_ENDPOINT_URL`` (one URL answers SageMaker, SageMaker Runtime, S3, CloudWatch Logs and
STS), dummy credentials and ``AWS_DEFAULT_REGION``, plus the SDK's config file with
``TelemetryOptOut``.

**No egress**: ``tests/e2e/sdk/site/sitecustomize.py`` is loaded by every SDK process; its
audit hook records every socket target and refuses any that is not loopback before a packet
leaves. Every test asserts that each record was allowed and that the server was reached
(so the hook was live). The SDK's fixed poll intervals (10 s, 30 s) run on a fast clock
(``HOMEPORT_FAST_CLOCK``): sleeps are capped at 0.5 s and ``time.time()`` moves on by the rest
(``HOMEPORT_SDK_REAL_CLOCK=1`` turns that off).

Process runtime only: one module server of its own (the docker runtime is covered by the
rest of the suite; the SDK sees no difference).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from e2e_support import IRIS, ROLE, ROOT, Server, start_server

SDK_DIR = Path(__file__).parent / "sdk"
SITE = SDK_DIR / "site"
SDK_BYO = Path(__file__).parent / "images" / "sdk_byo"
VENVS = {2: ROOT / ".venv-sdk2", 3: ROOT / ".venv-sdk3"}
SPECIES = {"setosa": 0, "versicolor": 1, "virginica": 2}
XGBOOST_TIMEOUT = 900  # the first job of a built-in prepares its venv
BUCKET = "sdk-e2e"


@dataclass
class SdkRun:
    returncode: int
    stdout: str
    result: dict[str, Any]
    egress: list[dict[str, Any]]
    seconds: float


def sdk_python(major: int) -> Path:
    python = VENVS[major] / "bin" / "python"
    if not (VENVS[major] / ".homeport-sdk-installed").exists():
        done = subprocess.run(
            [str(ROOT / "scripts" / "sdk-venvs.sh"), str(major)], capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/sdk-venvs.sh {major} failed:\n{done.stdout}\n{done.stderr}")
    return python


def sdk_env(server: Server, work: Path) -> dict[str, str]:
    """Only what a user would set, in a clean environment (no proxies, no ~/.aws)."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    config = work / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(work),
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": "homeport",
        "AWS_SECRET_ACCESS_KEY": "homeport",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "PYTHONPATH": str(SITE),
        "PYTHONUNBUFFERED": "1",
        "HOMEPORT_EGRESS_LOG": str(work / "egress.jsonl"),
        "HOMEPORT_SDK_RESULT": str(work / "result.json"),
        # HOMEPORT_SDK_REAL_CLOCK=1 runs the SDK's polls at their real pace (minutes per test).
        "HOMEPORT_FAST_CLOCK": "0" if os.environ.get("HOMEPORT_SDK_REAL_CLOCK") == "1" else "1",
    }


def run_sdk(
    server: Server,
    major: int,
    script: str,
    params: dict[str, Any],
    work: Path,
    timeout: float = 300,
    extra_env: dict[str, str] | None = None,
) -> SdkRun:
    """Run one flow script under the SDK venv; fail with its output unless it succeeded."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**sdk_env(server, work), **(extra_env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(sdk_python(major)), str(SDK_DIR / script), json.dumps(params)],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"{script} timed out after {timeout} s:\n{out[-6000:]}\n{server_log_tail(server)}")
    (work / "stdout.txt").write_text(proc.stdout)  # the whole of it, for post-mortems
    result_file = Path(env["HOMEPORT_SDK_RESULT"])
    egress_file = Path(env["HOMEPORT_EGRESS_LOG"])
    run = SdkRun(
        returncode=proc.returncode,
        stdout=proc.stdout,
        result=json.loads(result_file.read_text()) if result_file.exists() else {},
        egress=[json.loads(line) for line in egress_file.read_text().splitlines()]
        if egress_file.exists()
        else [],
        seconds=time.monotonic() - started,
    )
    sys.stdout.write(f"--- {script} ({run.seconds:.1f} s)\n{run.stdout[-3000:]}\n")
    if proc.returncode != 0 or not result_file.exists():
        pytest.fail(f"{script} failed ({proc.returncode}):\n{proc.stdout[-8000:]}\n{server_log_tail(server)}")
    return run


def server_log_tail(server: Server, lines: int = 40) -> str:
    if server.log_path is None or not server.log_path.exists():
        return ""
    return "--- server log:\n" + "\n".join(server.log_path.read_text().splitlines()[-lines:])


def assert_no_egress(run: SdkRun, server: Server) -> None:
    """Every socket target of the SDK process was loopback, and the server was reached."""
    refused = [r for r in run.egress if not r["allowed"]]
    assert not refused, f"the SDK tried to reach the outside: {refused}"
    assert {r["host"] for r in run.egress if r["event"] == "socket.connect"} <= {"127.0.0.1"}, run.egress
    assert any(
        r["event"] == "socket.connect" and r["host"] == "127.0.0.1" and r["port"] == str(server.port)
        for r in run.egress
    ), f"the egress hook saw no connection to the server: {run.egress}"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sdk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("homeport-sdk"),
        "--stop-grace",
        "3",
        "--instance-stop-grace",
        "3",
        runtime="process",
    )
    srv.add_image("sdk-byo", SDK_BYO)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir / "objects", ignore_errors=True)


def boto(server: Server, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="homeport",
        aws_secret_access_key="homeport",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Iris as label-first CSV without a header: 120 rows to train, 30 to validate."""
    rows = []
    for line in IRIS.read_text().splitlines():
        label, *features = line.split(",")
        rows.append([SPECIES[label], *map(float, features)])
    validation = rows[::5]
    train = [r for i, r in enumerate(rows) if i % 5]
    folder = tmp_path_factory.mktemp("sdk-iris")
    for name, part in (("train", train), ("validation", validation)):
        (folder / f"{name}.csv").write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in part))
    (folder / "batch.csv").write_text("".join(",".join(f"{v:g}" for v in r[1:]) + "\n" for r in validation))
    return {"folder": folder, "train": train, "validation": validation}


@pytest.fixture(scope="module")
def byo_job(sdk_server: Server, iris: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> SdkRun:
    """Flow 2, shared by the deploy and transform flows: Estimator.fit of the sdk-byo image."""
    folder = iris["folder"]
    return run_sdk(
        sdk_server,
        2,
        "v2_estimator.py",
        {
            "bucket": BUCKET,
            "image": "sdk-byo",
            "train": str(folder / "train.csv"),
            "validation": str(folder / "validation.csv"),
        },
        tmp_path_factory.mktemp("sdk-v2-fit"),
    )


# ---------------------------------------------------------------------------- the egress hook


def test_the_egress_hook_refuses_and_records_non_loopback_targets(sdk_server: Server, tmp_path: Path) -> None:
    """The hook is what the no-egress assertions rest on: prove it blocks before connecting."""
    env = {**sdk_env(sdk_server, tmp_path), "PORT": str(sdk_server.port)}
    probe = [str(sdk_python(2)), str(SDK_DIR / "egress_probe.py")]
    subprocess.run(probe, env=env, cwd=tmp_path, check=True, timeout=60)
    out = json.loads((tmp_path / "result.json").read_text())
    assert out["connect"].startswith("ConnectionRefusedError: homeport-e2e: egress to '203.0.113.7'")
    assert out["create_connection"].startswith("gaierror") and "refused" in out["create_connection"]
    assert out["resolve"].startswith("gaierror") and "refused" in out["resolve"]
    assert out["udp"].startswith("ConnectionRefusedError") and "8.8.8.8" in out["udp"]
    assert out["loopback"] == "ok"
    records = [json.loads(line) for line in (tmp_path / "egress.jsonl").read_text().splitlines()]
    refused = {(r["event"], r["host"]) for r in records if not r["allowed"]}
    assert refused == {
        ("socket.connect", "203.0.113.7"),
        ("socket.getaddrinfo", "198.51.100.9"),
        ("socket.getaddrinfo", "sts.us-east-1.amazonaws.com"),
        ("socket.sendto", "8.8.8.8"),
    }
    assert any(r["allowed"] and r["host"] == "127.0.0.1" for r in records)


# ---------------------------------------------------------------------------- SDK v2


def test_v2_session_named_default_bucket_and_upload_data(
    sdk_server: Server, iris: dict[str, Any], tmp_path: Path
) -> None:
    run = run_sdk(
        sdk_server,
        2,
        "v2_session.py",
        {
            "mode": "named",
            "bucket": "sdk-named",
            "path": str(iris["folder"] / "train.csv"),
            "key_prefix": "up",
        },
        tmp_path,
    )
    assert_no_egress(run, sdk_server)
    assert run.result["bucket"] == "sdk-named"
    assert run.result["uri"] == "s3://sdk-named/up/train.csv"
    assert run.result["again"] == "s3://sdk-named/up-2/train.csv"
    body = boto(sdk_server, "s3").get_object(Bucket="sdk-named", Key="up/train.csv")["Body"].read()
    assert body == (iris["folder"] / "train.csv").read_bytes() and run.result["size"] == len(body)


def test_v2_estimator_fit_streams_the_job_log(sdk_server: Server, byo_job: SdkRun) -> None:
    assert_no_egress(byo_job, sdk_server)
    job = byo_job.result["job"]
    assert job.startswith("sdk-byo-")
    # What fit(logs=True) printed: the status lines and the job's own log, from CloudWatch Logs.
    for line in (
        "sdk-byo epoch 1/3 rows=120",
        "sdk-byo epoch 3/3",
        "sdk-byo validation-accuracy=",
        "sdk-byo training complete",
    ):
        assert line in byo_job.stdout, byo_job.stdout
    assert "Completed - Training job completed" in byo_job.stdout
    assert byo_job.result["model_data"] == f"s3://{BUCKET}/byo/output/{job}/output/model.tar.gz"
    head = boto(sdk_server, "s3").head_object(Bucket=BUCKET, Key=f"byo/output/{job}/output/model.tar.gz")
    assert head["ContentLength"] > 0
    desc = boto(sdk_server, "sagemaker").describe_training_job(TrainingJobName=job)
    assert desc["HyperParameters"] == {"epochs": "3"}
    assert desc["OutputDataConfig"]["KmsKeyId"] == ""  # Estimator.attach reads it
    assert {c["ChannelName"] for c in desc["InputDataConfig"]} == {"train", "validation"}


def test_v2_deploy_predict_csv_and_json_then_delete(
    sdk_server: Server, byo_job: SdkRun, iris: dict[str, Any], tmp_path: Path
) -> None:
    rows = [r[1:] for r in iris["validation"][:6]]
    expected = [r[0] for r in iris["validation"][:6]]
    run = run_sdk(
        sdk_server,
        2,
        "v2_deploy.py",
        {"bucket": BUCKET, "job": byo_job.result["job"], "rows": rows},
        tmp_path,
    )
    assert_no_egress(run, sdk_server)
    # CSVDeserializer: a list of rows of strings; JSONDeserializer: the parsed document.
    assert run.result["csv"] == [[str(label)] for label in expected]
    assert run.result["json"] == {"predictions": expected}
    sm = boto(sdk_server, "sagemaker")
    endpoint = run.result["endpoint"]
    for call, kwargs in (
        (sm.describe_endpoint, {"EndpointName": endpoint}),
        (sm.describe_endpoint_config, {"EndpointConfigName": endpoint}),
        (sm.describe_model, {"ModelName": run.result["models"][0]}),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert err.value.response["Error"]["Code"] == "ValidationException"


def test_v2_batch_transform_from_the_estimator(
    sdk_server: Server, byo_job: SdkRun, iris: dict[str, Any], tmp_path: Path
) -> None:
    run = run_sdk(
        sdk_server,
        2,
        "v2_transform.py",
        {"bucket": BUCKET, "job": byo_job.result["job"], "batch": str(iris["folder"] / "batch.csv")},
        tmp_path,
    )
    assert_no_egress(run, sdk_server)
    job = run.result["job"]
    desc = boto(sdk_server, "sagemaker").describe_transform_job(TransformJobName=job)
    assert desc["TransformJobStatus"] == "Completed"
    assert desc["TransformInput"]["SplitType"] == "Line"
    assert desc["TransformInput"]["ContentType"] == "text/csv"
    output = run.result["output_path"].removeprefix(f"s3://{BUCKET}/")
    body = (
        boto(sdk_server, "s3")
        .get_object(Bucket=BUCKET, Key=f"{output}/batch.csv.out")["Body"]
        .read()
        .decode()
    )
    predictions = [int(v) for v in body.split()]
    assert len(predictions) == len(iris["validation"])
    truth = [r[0] for r in iris["validation"]]
    assert sum(p == t for p, t in zip(predictions, truth, strict=True)) >= 0.8 * len(truth)


def test_v2_session_default_bucket_from_the_sdk_config_file(
    sdk_server: Server, iris: dict[str, Any], tmp_path: Path
) -> None:
    """Session() without a bucket name, the name in the SDK's config file: the SDK creates it
    through the S3 API (HeadBucket 404 → CreateBucket) and uploads into it."""
    config = tmp_path / "config-with-bucket.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
        "      Session:\n        DefaultS3Bucket: sagemaker-us-east-1-123456789012\n"
    )
    run = run_sdk(
        sdk_server,
        2,
        "v2_session.py",
        {"mode": "config", "path": str(iris["folder"] / "validation.csv"), "key_prefix": "data"},
        tmp_path / "run",
        extra_env={"SAGEMAKER_USER_CONFIG_OVERRIDE": str(config)},
    )
    assert_no_egress(run, sdk_server)
    assert run.result == {
        "bucket": "sagemaker-us-east-1-123456789012",
        "uri": "s3://sagemaker-us-east-1-123456789012/data/validation.csv",
    }
    s3 = boto(sdk_server, "s3")
    assert "sagemaker-us-east-1-123456789012" in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    s3.head_object(Bucket="sagemaker-us-east-1-123456789012", Key="data/validation.csv")


def test_v2_session_default_bucket_by_account_asks_aws_sts_and_is_refused(
    sdk_server: Server, iris: dict[str, Any], tmp_path: Path
) -> None:
    """Known gap, pinned: with no bucket name anywhere, SDK v2 asks STS for the account at a
    hard-coded ``https://sts.<region>.amazonaws.com`` (``sts_regional_endpoint``), which
    AWS_ENDPOINT_URL cannot redirect. The hook refuses it before any packet leaves; the SDK
    fails. (Homeport's own STS answers every client that follows AWS_ENDPOINT_URL.)"""
    run = run_sdk(
        sdk_server,
        2,
        "v2_session.py",
        {"mode": "unnamed", "path": str(iris["folder"] / "validation.csv"), "key_prefix": "data"},
        tmp_path,
    )
    assert "sts.us-east-1.amazonaws.com" in run.result["error"]
    refused = {(r["event"], r["host"]) for r in run.egress if not r["allowed"]}
    assert refused == {("socket.getaddrinfo", "sts.us-east-1.amazonaws.com")}
    assert not any(r["event"] == "socket.connect" and r["host"] != "127.0.0.1" for r in run.egress)


def test_v2_builtin_xgboost_fit_deploy_predict_csv(
    sdk_server: Server, iris: dict[str, Any], tmp_path: Path
) -> None:
    folder = iris["folder"]
    rows = [r[1:] for r in iris["validation"]]
    run = run_sdk(
        sdk_server,
        2,
        "v2_xgboost.py",
        {
            "bucket": BUCKET,
            "train": str(folder / "train.csv"),
            "validation": str(folder / "validation.csv"),
            "rows": rows,
        },
        tmp_path,
        timeout=XGBOOST_TIMEOUT,
    )
    assert_no_egress(run, sdk_server)
    assert run.result["image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    assert "#011validation-mlogloss:" in run.stdout  # the algorithm's evaluation lines, streamed
    labels = [float(v) for row in run.result["answer"] for v in row if v != ""]
    truth = [r[0] for r in iris["validation"]]
    assert len(labels) == len(truth)
    assert sum(lab == t for lab, t in zip(labels, truth, strict=True)) >= 0.8 * len(truth)
    sm = boto(sdk_server, "sagemaker")
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName=run.result["endpoint"])
    desc = sm.describe_training_job(TrainingJobName=run.result["job"])
    assert {m["MetricName"] for m in desc.get("FinalMetricDataList", [])} >= {"validation:mlogloss"}


def test_v2_sklearn_framework_estimator_fit_deploy_predict(
    sdk_server: Server, iris: dict[str, Any], tmp_path: Path
) -> None:
    rows = [r[1:] for r in iris["validation"][:8]]
    run = run_sdk(
        sdk_server,
        2,
        "v2_sklearn.py",
        {
            "bucket": BUCKET,
            "train": str(iris["folder"] / "train.csv"),
            "source_dir": str(SDK_DIR / "sklearn_source"),
            "rows": rows,
        },
        tmp_path,
        timeout=XGBOOST_TIMEOUT,
    )
    assert_no_egress(run, sdk_server)
    job = run.result["job"]
    assert "sklearn-script trained depth=3" in run.stdout
    assert run.result["image"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
    sm = boto(sdk_server, "sagemaker")
    hps = sm.describe_training_job(TrainingJobName=job)["HyperParameters"]
    source = json.loads(hps["sagemaker_submit_directory"])
    assert source == f"s3://{BUCKET}/{job}/source/sourcedir.tar.gz"
    boto(sdk_server, "s3").head_object(Bucket=BUCKET, Key=f"{job}/source/sourcedir.tar.gz")
    # Served without repacking: the serving container gets the code from the S3 archive.
    env = run.result["model_env"]
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == source and env["SAGEMAKER_PROGRAM"] == "train.py"
    truth = [r[0] for r in iris["validation"][:8]]
    assert len(run.result["answer"]) == len(truth)
    assert sum(a == t for a, t in zip(run.result["answer"], truth, strict=True)) >= 6


# ---------------------------------------------------------------------------- SDK v3


@pytest.mark.parametrize("mode", ["entry_script", "command"])
def test_v3_model_trainer_source_code_runs_through_the_sdk_driver(
    sdk_server: Server, iris: dict[str, Any], tmp_path: Path, mode: str
) -> None:
    run = run_sdk(
        sdk_server,
        3,
        "v3_model_trainer.py",
        {
            "mode": mode,
            "bucket": BUCKET,
            "image": "sdk-byo",
            "train": str(iris["folder"] / "train.csv"),
            "source_dir": str(SDK_DIR / "v3_source"),
        },
        tmp_path,
    )
    assert_no_egress(run, sdk_server)
    assert run.result["status"] == "Completed"
    # The job's log, streamed from CloudWatch Logs. The entry script gets the hyperparameters as
    # arguments; a command gets only its own (hyperparameters are in SM_HPS).
    expected = "epoch 1/1 rows=120 tag=command-mode" if mode == "command" else "epoch 2/2 rows=120 tag=none"
    assert f"v3-script {expected}" in run.stdout, run.stdout[-3000:]
    assert "Training Container Execution Completed" in run.stdout
    desc = boto(sdk_server, "sagemaker").describe_training_job(TrainingJobName=run.result["job"])
    assert desc["AlgorithmSpecification"]["ContainerEntrypoint"] == ["/bin/bash"]
    assert {c["ChannelName"] for c in desc["InputDataConfig"]} == {"train", "code", "sm_drivers"}
    model = run.result["model_data"]
    assert model == f"s3://{BUCKET}/v3/output/{run.result['job']}/output/model.tar.gz"
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(
        boto(sdk_server, "s3")
        .get_object(Bucket=BUCKET, Key=model.removeprefix(f"s3://{BUCKET}/"))["Body"]
        .read()
    )
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("v3-model.json"))
        seen = json.load(tar.extractfile(member))  # type: ignore[arg-type]
    assert seen["rows"] == 120
    assert seen["env"]["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert json.loads(seen["env"]["SM_HPS"]) == {"epochs": 2}


def test_iam_calls_get_access_denied_in_iams_shape(sdk_server: Server) -> None:
    """Homeport has no IAM: what the SDKs ask IAM (role simulation, GetRole) is answered
    AccessDenied in IAM's XML, which they read as "cannot verify" and go on."""
    iam = boto(sdk_server, "iam")
    for call, kwargs in (
        (iam.simulate_principal_policy, {"PolicySourceArn": ROLE, "ActionNames": ["s3:GetObject"]}),
        (iam.get_role, {"RoleName": "R"}),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "Homeport has no IAM" in err.value.response["Error"]["Message"]
