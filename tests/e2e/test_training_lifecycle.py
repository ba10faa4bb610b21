"""Training jobs through boto3 against a live server, with the scripted test image."""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError
from e2e_support import Server, job_processes, training_request, wait_for, wait_secondary


def fetch_tar(server: Server, uri: str, tmp_path: Path) -> tarfile.TarFile:
    dest = tmp_path / uri.rsplit("/", 1)[-1]
    server.cp(uri, str(dest))
    return tarfile.open(dest, "r:gz")


def read_member(tar: tarfile.TarFile, name: str) -> str:
    member = tar.extractfile(name)
    assert member is not None, name
    return member.read().decode()


def test_successful_job_follows_the_contract(
    server: Server, sm: Any, data_bucket: str, tmp_path: Path
) -> None:
    name = "contract-Job-1"
    request = training_request(
        name,
        HyperParameters={"behaviour": "succeed", "lr": "0.1", "nested": '{"a": [1, 2]}'},
        Environment={"MY_FLAG": "on"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{data_bucket}/train"}
                },
            }
        ],
        AlgorithmSpecification={
            "TrainingImage": "scripted:latest",
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "train:loss", "Regex": r"train-loss=([0-9.]+)"},
                {"Name": "accuracy", "Regex": r"accuracy=([0-9.]+)"},
            ],
        },
        CheckpointConfig={"S3Uri": "s3://output/checkpoints/contract"},
        DebugHookConfig={"S3OutputPath": "s3://output/debug", "CollectionConfigurations": []},
        ProfilerConfig={"S3OutputPath": "s3://output/profiler", "DisableProfiler": False},
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    arn = sm.create_training_job(**request)["TrainingJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:training-job/contract-job-1"
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    desc = sm.describe_training_job(TrainingJobName=name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert all("EndTime" in t for t in desc["SecondaryStatusTransitions"])
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://output/jobs/{name}/output/model.tar.gz"
    assert desc["TrainingTimeInSeconds"] >= 1 and desc["BillableTimeInSeconds"] >= 1
    assert desc["TrainingStartTime"] <= desc["TrainingEndTime"]
    # Accepted-and-echoed members SageMaker clients send.
    assert desc["DebugHookConfig"]["S3OutputPath"] == "s3://output/debug"
    assert desc["ProfilerConfig"]["S3OutputPath"] == "s3://output/profiler"
    assert desc["ProfilingStatus"] == "Enabled"
    assert desc["HyperParameters"]["nested"] == '{"a": [1, 2]}'
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics == {"train:loss": pytest.approx(0.1667, abs=1e-3), "accuracy": pytest.approx(0.9)}

    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    names = set(tar.getnames())
    assert {"contract.json", "sub/weights.txt"} <= {n.removeprefix("./") for n in names}
    contract = json.loads(read_member(tar, next(n for n in names if n.endswith("contract.json"))))
    assert contract["argv"][0] == "/opt/program/train" or contract["argv"][0].endswith("/train")
    assert contract["hostname"] == "algo-1"
    assert contract["algo_1"].startswith("127.")
    assert contract["config"]["hyperparameters.json"] == {
        "behaviour": "succeed",
        "lr": "0.1",
        "nested": '{"a": [1, 2]}',
    }
    assert contract["config"]["inputdataconfig.json"] == {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    }
    resource = contract["config"]["resourceconfig.json"]
    assert resource["current_host"] == "algo-1" and resource["hosts"] == ["algo-1"]
    assert resource["network_interface_name"]
    assert resource["current_instance_type"] == "ml.m5.large"
    assert contract["data"] == {"train/part-a.csv": "1,2,3\n4,5,6\n", "train/nested/part-b.csv": "7,8,9\n"}
    env = contract["env"]
    assert env["TRAINING_JOB_NAME"] == name
    assert env["TRAINING_JOB_ARN"] == arn
    assert env["MY_FLAG"] == "on"
    assert "HOMEPORT_HOME" not in env  # the server's environment does not leak in
    assert (
        contract["python"].startswith(str(Path.home())) or "venv" in contract["python"] or contract["python"]
    )
    assert contract["tmp"] == []  # a private /tmp
    # output.tar.gz holds /opt/ml/output/data
    out = fetch_tar(server, f"s3://output/jobs/{name}/output/output.tar.gz", tmp_path)
    assert read_member(out, next(n for n in out.getnames() if n.endswith("report.txt"))) == "all good\n"
    # checkpoints synced to CheckpointConfig.S3Uri
    ckpt = tmp_path / "ckpt.txt"
    server.cp("s3://output/checkpoints/contract/ckpt-final.txt", str(ckpt))
    assert ckpt.read_text() == "final\n"
    # tags given at creation
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    # logs
    logs = server.homeport("logs", name, "--data-dir", str(server.data_dir)).stdout
    assert "contract recorded" in logs and "epoch 2" in logs and "done" in logs


def test_failure_file_becomes_failure_reason(server: Server, sm: Any) -> None:
    sm.create_training_job(**training_request("fails-with-file", HyperParameters={"behaviour": "fail"}))
    with pytest.raises(WaiterError):
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName="fails-with-file", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    desc = sm.describe_training_job(TrainingJobName="fails-with-file")
    assert desc["TrainingJobStatus"] == "Failed" and desc["SecondaryStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ValueError: max_depth must be positive")
    assert len(desc["FailureReason"]) == 1024


def test_crash_without_failure_file_reports_exit_code_and_log(server: Server, sm: Any) -> None:
    sm.create_training_job(**training_request("crashes", HyperParameters={"behaviour": "crash"}))
    desc = wait_for(sm, "crashes")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "exited with code 3" in desc["FailureReason"]
    assert "crash log line 29" in desc["FailureReason"]


def test_unknown_image_fails_at_once_naming_it(server: Server, sm: Any) -> None:
    start = time.time()
    sm.create_training_job(**training_request("no-image", image="does-not-exist:v9"))
    desc = wait_for(sm, "no-image", timeout=20)
    assert time.time() - start < 10
    assert desc["TrainingJobStatus"] == "Failed"
    assert "does-not-exist:v9" in desc["FailureReason"]


def test_missing_input_prefix_fails_like_sagemaker(server: Server, sm: Any) -> None:
    channel = {
        "ChannelName": "train",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/nothing-here"}},
    }
    sm.create_training_job(**training_request("no-data", InputDataConfig=[channel]))
    desc = wait_for(sm, "no-data")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        'ClientError: No S3 objects found under S3 URL "s3://data/nothing-here"'
    )


def test_manifest_channel(server: Server, sm: Any, data_bucket: str, tmp_path: Path) -> None:
    manifest = tmp_path / "train.manifest"
    manifest.write_text(
        json.dumps([{"prefix": f"s3://{data_bucket}/train/"}, "part-a.csv", "nested/part-b.csv"])
    )
    server.cp(str(manifest), f"s3://{data_bucket}/manifests/train.manifest")
    channel = {
        "ChannelName": "training",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "ManifestFile",
                "S3Uri": f"s3://{data_bucket}/manifests/train.manifest",
            }
        },
    }
    sm.create_training_job(**training_request("manifest-job", InputDataConfig=[channel]))
    desc = wait_for(sm, "manifest-job")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    contract = json.loads(read_member(tar, next(n for n in tar.getnames() if n.endswith("contract.json"))))
    assert set(contract["data"]) == {"training/part-a.csv", "training/nested/part-b.csv"}
    # a small channel is copied from the local store, so it is writable as on SageMaker
    assert contract["data_writable"] is True
    assert contract["channel_writable"] == {"training": True}


def test_large_channel_is_hard_linked_and_read_only(
    server: Server, sm: Any, data_bucket: str, tmp_path: Path
) -> None:
    """A channel of 32 MiB or more is hard-linked from the local store (no bytes copied) and
    mounted read-only, so a container cannot change the stored object through the link; the
    other channels stay writable."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(33 * 1024 * 1024))
    server.cp(str(big), f"s3://{data_bucket}/big-channel/big.bin")
    channels = [
        {
            "ChannelName": name,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{data_bucket}/{key}"}},
        }
        for name, key in (("big", "big-channel/"), ("small", "train/"))
    ]
    name = f"big-channel-{server.runtime}"
    sm.create_training_job(**training_request(name, InputDataConfig=channels))
    desc = wait_for(sm, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    contract = json.loads(read_member(tar, next(n for n in tar.getnames() if n.endswith("contract.json"))))
    assert contract["channel_writable"] == {"big": False, "small": True}
    assert "big/big.bin" in contract["data"]


def test_container_entrypoint_and_arguments(server: Server, sm: Any, tmp_path: Path) -> None:
    algorithm = {
        "TrainingImage": "scripted",
        "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python3", "/opt/program/train"],
        "ContainerArguments": ["--extra", "value"],
    }
    sm.create_training_job(**training_request("entrypoint-job", AlgorithmSpecification=algorithm))
    desc = wait_for(sm, "entrypoint-job")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["AlgorithmSpecification"]["ContainerArguments"] == ["--extra", "value"]
    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    contract = json.loads(read_member(tar, next(n for n in tar.getnames() if n.endswith("contract.json"))))
    assert contract["argv"] == ["/opt/program/train", "--extra", "value"]


def test_stop_sends_sigterm_and_still_uploads(server: Server, sm: Any, tmp_path: Path) -> None:
    sm.create_training_job(
        **training_request("stop-me", HyperParameters={"behaviour": "sleep", "seconds": "120"})
    )
    wait_secondary(sm, "stop-me", "Training")
    time.sleep(1.0)
    sm.stop_training_job(TrainingJobName="stop-me")
    assert sm.describe_training_job(TrainingJobName="stop-me")["TrainingJobStatus"] in ("Stopping", "Stopped")
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="stop-me", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    desc = sm.describe_training_job(TrainingJobName="stop-me")
    assert desc["TrainingJobStatus"] == "Stopped" and desc["SecondaryStatus"] == "Stopped"
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses[-3:] == ["Stopping", "Uploading", "Stopped"]
    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    names = {n.removeprefix("./") for n in tar.getnames()}
    assert {"partial.txt", "on-sigterm.txt"} <= names
    # stopping a finished job is refused the way SageMaker refuses it
    with pytest.raises(ClientError) as exc:
        sm.stop_training_job(TrainingJobName="stop-me")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "status Stopped" in exc.value.response["Error"]["Message"]


def test_stop_escalates_to_sigkill_after_grace(server: Server, sm: Any, tmp_path: Path) -> None:
    sm.create_training_job(
        **training_request("stubborn", HyperParameters={"behaviour": "ignore-term", "seconds": "120"})
    )
    wait_secondary(sm, "stubborn", "Training")
    time.sleep(0.5)
    started = time.time()
    sm.stop_training_job(TrainingJobName="stubborn")
    desc = wait_for(sm, "stubborn", timeout=60)
    elapsed = time.time() - started
    assert desc["TrainingJobStatus"] == "Stopped"
    assert 2.5 <= elapsed < 30  # the server runs with --stop-grace 3
    assert job_processes("stubborn") == []
    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    assert "partial.txt" in {n.removeprefix("./") for n in tar.getnames()}


def test_max_runtime_is_enforced_and_uploads(server: Server, sm: Any, tmp_path: Path) -> None:
    sm.create_training_job(
        **training_request(
            "too-long",
            HyperParameters={"behaviour": "sleep", "seconds": "120"},
            StoppingCondition={"MaxRuntimeInSeconds": 2},
        )
    )
    desc = wait_for(sm, "too-long", timeout=60)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"
    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    assert {"partial.txt", "on-sigterm.txt"} <= {n.removeprefix("./") for n in tar.getnames()}


def test_stop_a_job_queued_behind_capacity(tmp_path: Path) -> None:
    from e2e_support import SCRIPTED, start_server

    srv = start_server(tmp_path, "--max-concurrent-jobs", "1", "--stop-grace", "2")
    try:
        srv.add_image("scripted", SCRIPTED)
        sm = srv.sagemaker()
        sm.create_training_job(
            **training_request("first", HyperParameters={"behaviour": "sleep", "seconds": "60"})
        )
        wait_secondary(sm, "first", "Training")
        sm.create_training_job(**training_request("second", HyperParameters={"behaviour": "succeed"}))
        desc = sm.describe_training_job(TrainingJobName="second")
        assert desc["TrainingJobStatus"] == "InProgress"
        assert desc["SecondaryStatus"] == "Pending"  # waits for capacity
        time.sleep(1)
        assert sm.describe_training_job(TrainingJobName="second")["SecondaryStatus"] == "Pending"
        sm.stop_training_job(TrainingJobName="first")
        assert wait_for(sm, "first")["TrainingJobStatus"] == "Stopped"
        second = wait_for(sm, "second")
        assert second["TrainingJobStatus"] == "Completed", second.get("FailureReason")
        statuses = [t["Status"] for t in second["SecondaryStatusTransitions"]]
        assert statuses[:3] == ["Starting", "Pending", "Downloading"]
    finally:
        srv.stop()


def test_network_isolation_gives_only_loopback(server: Server, sm: Any, tmp_path: Path) -> None:
    sm.create_training_job(**training_request("isolated", EnableNetworkIsolation=True))
    desc = wait_for(sm, "isolated")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["EnableNetworkIsolation"] is True


def test_training_with_io_of_a_bigger_model(server: Server, sm: Any, tmp_path: Path) -> None:
    sm.create_training_job(
        **training_request("big-model", HyperParameters={"behaviour": "big-model", "size_mb": "20"})
    )
    desc = wait_for(sm, "big-model", timeout=120)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    tar = fetch_tar(server, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path)
    member = tar.getmember(next(n for n in tar.getnames() if n.endswith("big.bin")))
    assert member.size == 20 * 1024 * 1024
    buf = tar.extractfile(member)
    assert buf is not None and len(buf.read()) == member.size


def test_logs_follow_streams_until_the_job_ends(server: Server, sm: Any) -> None:
    import subprocess

    from e2e_support import HOMEPORT

    sm.create_training_job(
        **training_request("follow-me", HyperParameters={"behaviour": "sleep", "seconds": "60"})
    )
    follower = subprocess.Popen(
        [HOMEPORT, "logs", "follow-me", "-f", "--data-dir", str(server.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=server.env(),
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "contract recorded"  # arrives while the job runs
        assert sm.describe_training_job(TrainingJobName="follow-me")["TrainingJobStatus"] == "InProgress"
        sm.stop_training_job(TrainingJobName="follow-me")
        rest = follower.stdout.read()
        assert follower.wait(timeout=30) == 0  # -f ends by itself once the job is over
        assert "got SIGTERM, saved" in rest
    finally:
        if follower.poll() is None:
            follower.kill()
