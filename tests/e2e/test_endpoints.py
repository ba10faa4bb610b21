"""Real-time endpoints end to end: models, configs, endpoints and InvokeEndpoint with real clients."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from e2e_support import (
    DECISION_TREES,
    IRIS,
    ROLE,
    Server,
    start_server,
    training_request,
    wait_for,
)

ECHO = Path(__file__).parent / "images" / "echo_flask"
AWS = str(Path(__file__).parent.parent.parent / ".venv" / "bin" / "aws")


def runtime(server: Server) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="homeport",
        aws_secret_access_key="homeport",
        config=Config(retries={"max_attempts": 1}, read_timeout=80),
    )


def model_tarball(server: Server, tmp: Path, content: str, uri: str) -> str:
    archive = tmp / f"{uuid.uuid4().hex}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = content.encode()
        info = tarfile.TarInfo("model.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    server.cp(str(archive), uri)
    return uri


def echo_model(sm: Any, server: Server, tmp: Path, name: str, version: str, greeting: str = "hi") -> None:
    url = model_tarball(server, tmp, version, f"s3://models/{name}/model.tar.gz")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "echo-flask", "ModelDataUrl": url, "Environment": {"GREETING": greeting}},
    )


def endpoint(sm: Any, name: str, variants: list[dict[str, Any]]) -> None:
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def variant(model: str, name: str = "AllTraffic", count: int = 1, weight: float = 1.0) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InitialVariantWeight": weight,
        "InstanceType": "ml.m5.large",
    }


def in_service(sm: Any, name: str) -> dict[str, Any]:
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    desc: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
    return desc


def call(rt: Any, name: str, body: bytes = b"x", **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    response = rt.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/plain", **kwargs)
    return json.loads(response["Body"].read()), response


def processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def echo_image(server: Server, sm: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The echo image plus two models of it, echo-v1 (GREETING=hello-v1) and echo-v2."""
    server.add_image("echo-flask", ECHO, "--requirements", str(ECHO / "requirements.txt"))
    tmp = tmp_path_factory.mktemp("echo-models")
    echo_model(sm, server, tmp, "echo-v1", "v1", greeting="hello-v1")
    echo_model(sm, server, tmp, "echo-v2", "v2")
    return "echo-flask"


def test_trained_decision_tree_served_by_the_classic_layout(server: Server, sm: Any) -> None:
    server.add_image(
        "decision-trees", DECISION_TREES, "--requirements", str(DECISION_TREES / "requirements.txt")
    )
    server.cp(str(IRIS), "s3://hosting-data/iris/iris.csv")
    channel = {
        "ChannelName": "training",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://hosting-data/iris"}},
    }
    sm.create_training_job(
        **training_request("iris-for-hosting", image="decision-trees", InputDataConfig=[channel])
    )
    job = wait_for(sm, "iris-for-hosting", timeout=300)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    sm.create_model(
        ModelName="iris-tree",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "decision-trees:latest",
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
        },
    )
    endpoint(sm, "iris-tree", [variant("iris-tree")])
    desc = in_service(sm, "iris-tree")
    assert desc["EndpointStatus"] == "InService"
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    rt = runtime(server)
    response = rt.invoke_endpoint(
        EndpointName="iris-tree", Body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", ContentType="text/csv"
    )
    assert response["Body"].read().decode().split() == ["setosa", "virginica"]
    assert response["InvokedProductionVariant"] == "AllTraffic"
    # the AWS CLI too
    out = Path(server.data_dir.parent) / "cli-out.txt"
    subprocess.run(
        [
            AWS,
            "--endpoint-url",
            server.url,
            "--region",
            "us-east-1",
            "sagemaker-runtime",
            "invoke-endpoint",
            "--endpoint-name",
            "iris-tree",
            "--content-type",
            "text/csv",
            "--body",
            "5.1,3.5,1.4,0.2",
            str(out),
        ],
        check=True,
        capture_output=True,
        env=server.env(),
        timeout=120,
    )
    assert out.read_text().strip() == "setosa"
    sm.delete_endpoint(EndpointName="iris-tree")
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName="iris-tree", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def test_two_endpoints_and_a_two_instance_variant(
    server: Server, sm: Any, echo_image: str, tmp_path: Path
) -> None:
    endpoint(sm, "ep-one", [variant("echo-v1", count=2)])
    endpoint(sm, "ep-two", [variant("echo-v2")])
    assert sm.describe_endpoint(EndpointName="ep-one")["EndpointStatus"] == "Creating"
    desc = in_service(sm, "ep-one")
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert desc["ProductionVariants"][0]["DeployedImages"][0]["SpecifiedImage"] == "echo-flask"
    in_service(sm, "ep-two")
    rt = runtime(server)
    instances = set()
    for _ in range(30):
        answer, response = call(rt, "ep-one", b"hello", Accept="application/json", CustomAttributes="c=1")
        assert answer["model"] == "v1" and answer["env"] == "hello-v1"
        assert answer["content_type"] == "text/plain" and answer["accept"] == "application/json"
        assert answer["custom"] == "c=1"
        assert response["ContentType"] == "application/json"
        assert response["CustomAttributes"] == "echoed"
        instances.add(answer["instance"])
    assert len(instances) == 2  # both instances get traffic
    assert call(rt, "ep-two")[0]["model"] == "v2"
    listed = sm.list_endpoints(NameContains="ep-", SortBy="Name", SortOrder="Ascending")["Endpoints"]
    assert [e["EndpointName"] for e in listed][:2] == ["ep-one", "ep-two"]


def test_errors_clients_depend_on(server: Server, sm: Any, echo_image: str, tmp_path: Path) -> None:
    rt = runtime(server)
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName="nope", Body=b"x")
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    assert exc.value.response["Error"]["Message"] == "Endpoint nope of account 123456789012 not found."
    for body, status, kind in ((b"fail", 500, "server"), (b"bad", 400, "client")):
        with pytest.raises(ClientError) as exc:
            rt.invoke_endpoint(EndpointName="ep-two", Body=body)
        error = exc.value.response["Error"]
        assert error["Code"] == "ModelError"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert error["Message"].startswith(f'Received {kind} error ({status}) from primary with message "')
        assert "/aws/sagemaker/Endpoints/ep-two" in error["Message"]
        assert exc.value.response["OriginalStatusCode"] == status
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName="ep-two", Body=b"x" * (6 * 1024 * 1024 + 1))
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert (
        call(rt, "ep-two", b"y" * (6 * 1024 * 1024))[0]["size"] == 6 * 1024 * 1024
    )  # the limit itself is fine
    with pytest.raises(ClientError) as exc:
        sm.describe_endpoint(EndpointName="nope")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert 'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/nope"' in str(
        exc.value
    )
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(
            EndpointConfigName="bad-config", ProductionVariants=[variant("no-such-model")]
        )
    assert "Could not find model" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName="echo-v1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "echo-flask"})
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "Cannot create already existing model" in exc.value.response["Error"]["Message"]


def test_streaming_response(server: Server, sm: Any, echo_image: str) -> None:
    rt = runtime(server)
    response = rt.invoke_endpoint_with_response_stream(
        EndpointName="ep-two", Body=b"stream", ContentType="text/plain"
    )
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"] if "PayloadPart" in event]
    assert b"".join(parts) == b"part-0;part-1;part-2;"
    assert len(parts) >= 2  # chunks arrive as the container writes them
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_weights_and_target_variant(server: Server, sm: Any, echo_image: str) -> None:
    endpoint(
        sm, "ep-weights", [variant("echo-v1", "blue", weight=1.0), variant("echo-v2", "green", weight=0.0)]
    )
    in_service(sm, "ep-weights")
    rt = runtime(server)
    assert {call(rt, "ep-weights")[0]["model"] for _ in range(20)} == {"v1"}
    answer, response = call(rt, "ep-weights", TargetVariant="green")
    assert answer["model"] == "v2" and response["InvokedProductionVariant"] == "green"
    sm.update_endpoint_weights_and_capacities(
        EndpointName="ep-weights",
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 0.0},
            {"VariantName": "green", "DesiredWeight": 1.0},
        ],
    )
    desc = in_service(sm, "ep-weights")
    weights = {v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]}
    assert weights == {"blue": 0.0, "green": 1.0}
    assert {call(rt, "ep-weights")[0]["model"] for _ in range(20)} == {"v2"}


def test_update_endpoint_under_load_has_zero_failures(
    server: Server, sm: Any, echo_image: str, tmp_path: Path
) -> None:
    marker = f"upd-{uuid.uuid4().hex[:8]}"
    echo_model(sm, server, tmp_path, "echo-upd", "v1", greeting=marker)
    endpoint(sm, "ep-update", [variant("echo-upd")])
    in_service(sm, "ep-update")
    assert processes_with(f"GREETING={marker}")
    sm.create_endpoint_config(EndpointConfigName="ep-update-v2", ProductionVariants=[variant("echo-v2")])
    failures: list[str] = []
    models: list[str] = []
    done = threading.Event()

    def load() -> None:
        rt = runtime(server)
        deadline = time.time() + 120
        while not done.is_set() and time.time() < deadline:
            try:
                models.append(call(rt, "ep-update")[0]["model"])
            except Exception as exc:  # counted, not raised: the assertion below reports them
                failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    sm.update_endpoint(EndpointName="ep-update", EndpointConfigName="ep-update-v2")
    assert sm.describe_endpoint(EndpointName="ep-update")["EndpointStatus"] == "Updating"
    desc = in_service(sm, "ep-update")
    time.sleep(1.0)
    done.set()
    for t in threads:
        t.join()
    assert failures == []
    assert "v1" in models and models[-1] == "v2"
    assert desc["EndpointConfigName"] == "ep-update-v2"
    deadline = time.time() + 30
    while processes_with(f"GREETING={marker}") and time.time() < deadline:
        time.sleep(0.2)
    assert processes_with(f"GREETING={marker}") == []  # the old instance drained and stopped


def test_crashed_instance_is_replaced(server: Server, sm: Any, echo_image: str) -> None:
    endpoint(sm, "ep-crash", [variant("echo-v1")])
    in_service(sm, "ep-crash")
    rt = runtime(server)
    first = call(rt, "ep-crash")[0]["instance"]
    with pytest.raises(ClientError):
        rt.invoke_endpoint(EndpointName="ep-crash", Body=b"crash")
    deadline = time.time() + 60
    answer = None
    while time.time() < deadline:
        try:
            answer = call(rt, "ep-crash")[0]
            if answer["instance"] != first:
                break
        except ClientError:
            pass
        time.sleep(0.3)
    assert answer is not None and answer["instance"] != first
    desc = sm.describe_endpoint(EndpointName="ep-crash")
    assert desc["EndpointStatus"] == "InService"
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1


def test_delete_stops_every_process(server: Server, sm: Any, echo_image: str, tmp_path: Path) -> None:
    marker = f"del-{uuid.uuid4().hex[:8]}"
    echo_model(sm, server, tmp_path, "echo-del", "vd", greeting=marker)
    endpoint(sm, "ep-del", [variant("echo-del", count=2)])
    in_service(sm, "ep-del")
    assert len(processes_with(f"GREETING={marker}")) >= 2
    sm.delete_endpoint(EndpointName="ep-del")
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName="ep-del", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    assert processes_with(f"GREETING={marker}") == []
    with pytest.raises(ClientError) as exc:
        runtime(server).invoke_endpoint(EndpointName="ep-del", Body=b"x")
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    sm.delete_endpoint_config(EndpointConfigName="ep-del")
    sm.delete_model(ModelName="echo-del")
    with pytest.raises(ClientError):
        sm.describe_model(ModelName="echo-del")


def test_malicious_model_archive_fails_the_endpoint(
    server: Server, sm: Any, echo_image: str, tmp_path: Path
) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    server.cp(str(archive), "s3://models/evil/model.tar.gz")
    sm.create_model(
        ModelName="evil",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "echo-flask", "ModelDataUrl": "s3://models/evil/model.tar.gz"},
    )
    endpoint(sm, "ep-evil", [variant("evil")])
    deadline = time.time() + 60
    while (
        sm.describe_endpoint(EndpointName="ep-evil")["EndpointStatus"] == "Creating"
        and time.time() < deadline
    ):
        time.sleep(0.2)
    desc = sm.describe_endpoint(EndpointName="ep-evil")
    assert desc["EndpointStatus"] == "Failed"
    assert "escaped.txt" in desc["FailureReason"]
    assert not (server.data_dir.parent / "escaped.txt").exists()


def test_logs_of_an_endpoint(server: Server, sm: Any, echo_image: str) -> None:
    out = server.homeport("logs", "--endpoint", "ep-two", "--data-dir", str(server.data_dir)).stdout
    assert "[AllTraffic/" in out and "Running on" in out  # Flask's start-up banner from the instance


def test_restart_brings_endpoints_back(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--instance-stop-grace", "2")
    try:
        sm = srv.sagemaker()
        srv.add_image("echo-flask", ECHO, "--requirements", str(ECHO / "requirements.txt"))
        marker = f"rst-{uuid.uuid4().hex[:8]}"
        echo_model(sm, srv, tmp_path, "echo-r", "vr", greeting=marker)
        endpoint(sm, "ep-restart", [variant("echo-r")])
        in_service(sm, "ep-restart")
        before = call(runtime(srv), "ep-restart")[0]["instance"]
        srv.kill9()
        deadline = time.time() + 10
        while processes_with(f"GREETING={marker}") and time.time() < deadline:
            time.sleep(0.1)
        assert processes_with(f"GREETING={marker}") == []  # instances die with the server
        srv.start()
        desc = in_service(sm, "ep-restart")
        assert desc["EndpointStatus"] == "InService"
        answer = call(runtime(srv), "ep-restart")[0]
        assert answer["model"] == "vr" and answer["instance"] != before
    finally:
        srv.stop()


def test_unhealthy_instance_leaves_the_route_and_is_replaced(
    server: Server, sm: Any, echo_image: str
) -> None:
    endpoint(sm, "ep-sick", [variant("echo-v1")])
    in_service(sm, "ep-sick")
    rt = runtime(server)
    sick = call(rt, "ep-sick")[0]["instance"]
    # from now on its /ping answers 503; the process stays up
    assert rt.invoke_endpoint(EndpointName="ep-sick", Body=b"unhealthy")["Body"].read() == b"ok"
    deadline = time.time() + 60
    answer: dict[str, Any] = {}
    while time.time() < deadline:
        try:
            answer = call(rt, "ep-sick")[0]
            if answer["instance"] != sick:
                break
        except ClientError:
            pass  # between removal and replacement there is no instance to route to
        time.sleep(0.3)
    assert answer.get("instance") not in (None, sick)
    assert sm.describe_endpoint(EndpointName="ep-sick")["EndpointStatus"] == "InService"


def test_logs_follow_an_endpoint_until_it_is_deleted(server: Server, sm: Any, echo_image: str) -> None:
    from e2e_support import HOMEPORT

    endpoint(sm, "ep-follow", [variant("echo-v1")])
    in_service(sm, "ep-follow")
    follower = subprocess.Popen(
        [HOMEPORT, "logs", "--endpoint", "ep-follow", "-f", "--data-dir", str(server.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=server.env(),
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().startswith("[AllTraffic/")
        sm.delete_endpoint(EndpointName="ep-follow")
        follower.stdout.read()
        assert follower.wait(timeout=60) == 0  # -f ends once the endpoint is gone
    finally:
        if follower.poll() is None:
            follower.kill()


def test_delete_while_creating_leaves_nothing_running(
    server: Server, sm: Any, echo_image: str, tmp_path: Path
) -> None:
    marker = f"early-{uuid.uuid4().hex[:8]}"
    echo_model(sm, server, tmp_path, "echo-early", "ve", greeting=marker)
    endpoint(sm, "ep-early", [variant("echo-early", count=2)])
    assert sm.describe_endpoint(EndpointName="ep-early")["EndpointStatus"] == "Creating"
    sm.delete_endpoint(EndpointName="ep-early")
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName="ep-early", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    deadline = time.time() + 15
    while processes_with(f"GREETING={marker}") and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # nothing may come up late either
    assert processes_with(f"GREETING={marker}") == []
