"""The docker runtime against a real engine (Podman's Docker-compatible service in CI).

A tiny busybox image is imported once per session; every container is labelled with a scope
unique to the test, and whatever a test leaves is removed by that label.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from homeport.errors import ImageNotFound, InternalFailure
from homeport.hosting.netns import connect_in_netns
from homeport.images.engine import EngineImages
from homeport.images.model import EngineImage, LocalImage
from homeport.runtimes.base import Mount, Resources, RunSpec
from homeport.runtimes.container import LABEL_RUN, ContainerRuntime, container_name
from homeport.runtimes.process import ProcessRuntime

BUSYBOX_TOOLS = ("sh", "echo", "cat", "sleep", "hostname", "ls", "env", "nc", "httpd", "trap", "kill", "test")


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture(scope="session")
def busybox(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> EngineImage:
    """localhost/homeport-test/busybox:1, from the host's busybox-static (no registry needed)."""
    tag = "localhost/homeport-test/busybox:1"
    try:
        return EngineImages(engine).resolve(tag)  # imported by an earlier session
    except ImageNotFound:
        pass
    root = tmp_path_factory.mktemp("busybox-root")
    (root / "bin").mkdir()
    busybox_bin = shutil.which("busybox")
    assert busybox_bin, "busybox-static must be installed (scripts/setup.sh --test)"
    shutil.copy(busybox_bin, root / "bin" / "busybox")
    for tool in BUSYBOX_TOOLS:
        (root / "bin" / tool).symlink_to("busybox")
    for folder in ("etc", "tmp", "opt/program"):
        (root / folder).mkdir(parents=True)
    script = root / "opt" / "program" / "train"
    script.write_text('#!/bin/sh\necho training as $(hostname) with "$@"\n')
    script.chmod(0o755)
    archive = tmp_path_factory.mktemp("busybox-tar") / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    with archive.open("rb") as data:
        answer = engine.api.import_image_from_data(
            data.read(), changes=["ENV PATH=/opt/program:/bin", "WORKDIR /"]
        )
    # Podman's compat import ignores the tag argument: tag the new image by its ID.
    image_id = json.loads(answer.strip().splitlines()[-1])["status"].strip()
    engine.images.get(image_id).tag("localhost/homeport-test/busybox", "1")
    return EngineImages(engine).resolve(tag)


@pytest.fixture
def runtime(engine: docker.DockerClient) -> Iterator[ContainerRuntime]:
    rt = ContainerRuntime(scope=f"test-{uuid.uuid4().hex[:12]}")
    rt.check()
    yield rt
    rt.close()
    rt.sweep()


def spec(image: EngineImage, argv: list[str], tmp: Path, **fields: object) -> RunSpec:
    return RunSpec(
        name=f"test/{uuid.uuid4().hex[:8]}",
        image=image,
        argv=argv,
        env=fields.pop("env", {}),  # type: ignore[arg-type]
        mounts=fields.pop("mounts", []),  # type: ignore[arg-type]
        scratch=tmp,
        **fields,  # type: ignore[arg-type]
    )


def run_to_end(rt: ContainerRuntime, s: RunSpec, timeout: float = 60) -> tuple[int | None, str]:
    run = rt.start(s)
    output = run.output.read().decode()
    return run.wait(timeout), output


def our_containers(engine: docker.DockerClient, rt: ContainerRuntime) -> list[str]:
    return [entry["Id"] for entry in rt.labelled()]


def test_train_command_mounts_env_hostname_and_exit_code(
    runtime: ContainerRuntime, busybox: EngineImage, tmp_path: Path, engine: docker.DockerClient
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("1,2\n")
    script = (
        "cat /opt/ml/input/data/x.csv; echo $TRAINING_JOB_NAME; hostname; cat /etc/hosts | grep -c algo-1; "
        "echo written > /opt/ml/model/out.txt; echo oops >&2; exit 3"
    )
    code, output = run_to_end(
        runtime,
        spec(
            busybox,
            ["sh", "-c", script],
            tmp_path,
            env={"TRAINING_JOB_NAME": "job-1"},
            mounts=[Mount(data, "/opt/ml/input/data", read_only=True), Mount(model, "/opt/ml/model")],
            hostname="algo-1",
        ),
    )
    assert code == 3
    lines = output.splitlines()
    assert lines[:3] == ["1,2", "job-1", "algo-1"]
    assert int(lines[3]) >= 1  # algo-1 resolves
    assert "oops" in lines  # stderr is merged into the output
    assert (model / "out.txt").read_text() == "written\n"
    deadline = time.time() + 10
    while our_containers(engine, runtime) and time.time() < deadline:
        time.sleep(0.1)
    assert our_containers(engine, runtime) == []  # an exited run leaves nothing behind


def test_image_command_is_train_and_entrypoint_override(
    runtime: ContainerRuntime, busybox: EngineImage, tmp_path: Path
) -> None:
    code, output = run_to_end(runtime, spec(busybox, ["train"], tmp_path, hostname="algo-1"))
    assert (code, output.strip()) == (0, "training as algo-1 with")
    code, output = run_to_end(runtime, spec(busybox, ["a", "b"], tmp_path, entrypoint=("train",)))
    assert (code, output.strip()) == (0, "training as algo-1 with a b")


def test_read_only_mount_refuses_writes(
    runtime: ContainerRuntime, busybox: EngineImage, tmp_path: Path
) -> None:
    code, output = run_to_end(
        runtime,
        spec(
            busybox,
            ["sh", "-c", "echo x > /opt/ml/model/y"],
            tmp_path,
            mounts=[Mount(tmp_path, "/opt/ml/model", True)],
        ),
    )
    assert code != 0
    assert "Read-only" in output or "read-only" in output
    assert not (tmp_path / "y").exists()


def test_network_none_has_only_loopback(
    runtime: ContainerRuntime, busybox: EngineImage, tmp_path: Path
) -> None:
    code, output = run_to_end(runtime, spec(busybox, ["ls", "/sys/class/net"], tmp_path, network="none"))
    assert code == 0
    assert output.split() == ["lo"]


def test_terminate_then_kill_and_labels(
    runtime: ContainerRuntime, busybox: EngineImage, tmp_path: Path, engine: docker.DockerClient
) -> None:
    # Ignores SIGTERM, like a stubborn training script: kill() must still end it.
    s = spec(
        busybox,
        ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"],
        tmp_path,
        labels={"kind": "training-job", "resource": "stubborn"},
    )
    run = runtime.start(s)
    assert run.output.readline() == b"ready\n"
    container = engine.containers.get(container_name(runtime.scope, s.name))
    assert container.labels[LABEL_RUN] == s.name
    assert container.labels["io.homeport.kind"] == "training-job"
    assert container.labels["io.homeport.resource"] == "stubborn"
    run.terminate()
    assert run.wait(1.0) is None  # SIGTERM ignored
    run.kill()
    assert run.wait(0) == -9
    assert our_containers(engine, runtime) == []


def test_serving_port_reached_in_the_network_namespace(
    runtime: ContainerRuntime, busybox: EngineImage, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "ping").write_text("pong")
    runs = []
    for _ in range(2):  # two containers bind 8080 at once
        s = spec(
            busybox,
            ["httpd", "-f", "-p", "8080", "-h", "/www"],
            tmp_path,
            network="none",
            mounts=[Mount(www, "/www", True)],
            ports=(8080,),
        )
        runs.append(runtime.start(s))
    for run in runs:
        address = run.address(8080)
        assert address.netns_pid > 0 and address.port == 8080
        deadline = time.time() + 10
        while True:
            try:
                sock = connect_in_netns(address.netns_pid, address.port, 2.0, address.host)
                break
            except OSError:
                assert time.time() < deadline
                time.sleep(0.05)
        sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"pong")
    for run in runs:
        run.kill()


def test_published_ports_mode(engine: docker.DockerClient, busybox: EngineImage, tmp_path: Path) -> None:
    rt = ContainerRuntime(scope=f"test-{uuid.uuid4().hex[:12]}", network_mode="ports")
    try:
        www = tmp_path / "www"
        www.mkdir()
        (www / "ping").write_text("pong")
        run = rt.start(
            spec(
                busybox,
                ["httpd", "-f", "-p", "8080", "-h", "/www"],
                tmp_path,
                mounts=[Mount(www, "/www", True)],
                ports=(8080,),
            )
        )
        address = run.address(8080)
        assert address.netns_pid == 0 and address.port != 8080
        deadline = time.time() + 10
        while True:
            try:
                sock = connect_in_netns(0, address.port, 2.0, address.host)
                break
            except OSError:
                assert time.time() < deadline
                time.sleep(0.05)
        sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.close()
    finally:
        rt.close()
        rt.sweep()


def test_sweep_removes_what_a_crashed_server_left(
    engine: docker.DockerClient, busybox: EngineImage, tmp_path: Path
) -> None:
    scope = f"test-{uuid.uuid4().hex[:12]}"
    crashed = ContainerRuntime(scope=scope)
    crashed.start(spec(busybox, ["sleep", "300"], tmp_path))
    crashed.start(spec(busybox, ["sleep", "300"], tmp_path))
    other = ContainerRuntime(scope=f"test-{uuid.uuid4().hex[:12]}")
    bystander = other.start(spec(busybox, ["sleep", "300"], tmp_path))
    try:
        restarted = ContainerRuntime(scope=scope)  # the next server, same data dir
        assert restarted.sweep() == 2
        assert our_containers(engine, restarted) == []
        assert len(our_containers(engine, other)) == 1  # another data dir's container is not touched
    finally:
        bystander.kill()


def test_create_options_resources_and_gpus(busybox: EngineImage, tmp_path: Path) -> None:
    rt = ContainerRuntime(
        scope="s", network_mode="netns", gpus="on", base_url="unix:///nonexistent"
    )
    options = rt.create_options(
        spec(
            busybox,
            ["train"],
            tmp_path,
            resources=Resources(cpus=2, memory_bytes=8 << 30, gpus=1),
            hosts={"algo-2": "127.0.0.2"},
        )
    )
    assert options["nano_cpus"] == 2_000_000_000
    assert options["mem_limit"] == 8 << 30
    assert options["network_mode"] == "host"
    assert options["extra_hosts"] == {"algo-1": "127.0.0.1", "algo-2": "127.0.0.2"}
    (request,) = options["device_requests"]
    assert request["Count"] == 1 and request["Capabilities"] == [["gpu"]]
    off = ContainerRuntime(
        scope="s",
        network_mode="netns",
        gpus="off",
        base_url="unix:///nonexistent",
    )
    assert "device_requests" not in off.create_options(
        spec(busybox, ["train"], tmp_path, resources=Resources(cpus=2, memory_bytes=1 << 30, gpus=1))
    )


def test_missing_image_and_wrong_image_kind(
    engine: docker.DockerClient, runtime: ContainerRuntime, tmp_path: Path
) -> None:
    with pytest.raises(ImageNotFound) as info:
        EngineImages(engine).resolve("123456789012.dkr.ecr.us-east-1.amazonaws.com/not-built-here:3")
    assert "not-built-here:3" in info.value.message and "never pulls" in info.value.message
    local = LocalImage(name="t", tag="latest", root=tmp_path, at="/opt/program")
    with pytest.raises(InternalFailure):
        runtime.start(spec(local, ["train"], tmp_path))  # type: ignore[arg-type]
    with pytest.raises(InternalFailure):
        ProcessRuntime().start(spec(EngineImage("x", "1", "sha256:00"), ["train"], tmp_path))


def test_ecr_uri_resolves_to_the_local_name(engine: docker.DockerClient, busybox: EngineImage) -> None:
    found = EngineImages(engine).resolve(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/homeport-test/busybox:1"
    )
    assert found.id == busybox.id


def test_unstartable_command_fails_clearly(
    runtime: ContainerRuntime, busybox: EngineImage, tmp_path: Path
) -> None:
    try:
        run = runtime.start(spec(busybox, ["no-such-program"], tmp_path))
    except InternalFailure as exc:  # Podman refuses at start
        assert "no-such-program" in exc.message
    else:  # an engine may start it and report 127
        assert run.wait(30) in (126, 127)


def test_build_from_containerfile(engine: docker.DockerClient, busybox: EngineImage, tmp_path: Path) -> None:
    (tmp_path / "Containerfile").write_text(f"FROM {busybox.reference}\nCOPY hello /opt/program/hello\n")
    (tmp_path / "hello").write_text("#!/bin/sh\necho hello\n")
    (tmp_path / "hello").chmod(0o755)
    tag = f"homeport-test/built-{uuid.uuid4().hex[:6]}:1"
    lines: list[str] = []
    image = EngineImages(engine).build(tmp_path, tag, on_line=lines.append)
    try:
        assert image.id.startswith("sha256:") and any("COPY" in line for line in lines)
        output = engine.containers.run(image.id, ["hello"], remove=True)
        assert output == b"hello\n"
    finally:
        engine.images.remove(image.id, force=True)
