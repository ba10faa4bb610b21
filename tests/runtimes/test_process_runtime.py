"""The process runtime against real namespaced processes: isolation, signals, lifetime, no orphans."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import (
    MARKER_VARIABLE,
    Lines,
    Sandbox,
    kill_leftovers,
    processes_with,
    write_script,
)

import homeport
from homeport.errors import ValidationException
from homeport.runtimes.base import Mount
from homeport.runtimes.process import ProcessRun, ProcessRuntime, userns_sysctl_problem

REPO = Path(homeport.__file__).resolve().parent.parent

PYTHON_REPORT = """
#!/usr/bin/env python
import json, os, socket, sys
print(json.dumps({
    "executable": sys.executable,
    "prefix": sys.prefix,
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "hostname": socket.gethostname(),
    "algo-1": socket.gethostbyname("algo-1"),
}))
"""


def test_check_passes_on_this_machine() -> None:
    ProcessRuntime().check()


def test_sysctl_refusals_are_named(tmp_path: Path) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "user").mkdir()
    assert userns_sysctl_problem(tmp_path) is None  # knobs absent: nothing to say
    (tmp_path / "user" / "max_user_namespaces").write_text("15000\n")
    (tmp_path / "kernel" / "unprivileged_userns_clone").write_text("1\n")
    assert userns_sysctl_problem(tmp_path) is None
    (tmp_path / "user" / "max_user_namespaces").write_text("0\n")
    assert userns_sysctl_problem(tmp_path) == "user.max_user_namespaces = 0"
    (tmp_path / "kernel" / "unprivileged_userns_clone").write_text("0\n")
    assert userns_sysctl_problem(tmp_path) == "kernel.unprivileged_userns_clone = 0"


def test_argv_is_found_on_path_and_env_python_is_the_venv(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": PYTHON_REPORT}, venv=True)
    code, output = sandbox.run(sandbox.spec(image, ["train", "--epochs", "3"]))
    assert code == 0, output
    report = json.loads(output)
    assert report["prefix"] == str(sandbox.venv)
    assert report["argv"] == ["/opt/program/train", "--epochs", "3"]
    assert report["cwd"] == "/opt/program"


def test_workdir_and_image_env(sandbox: Sandbox) -> None:
    image = sandbox.image(
        {"show": "#!/bin/sh\npwd\necho $FROM_IMAGE $BOTH\n"},
        env={"FROM_IMAGE": "image", "BOTH": "image"},
        workdir="/opt/ml",
    )
    code, output = sandbox.run(sandbox.spec(image, ["show"], env={"BOTH": "spec"}))
    assert (code, output) == (0, "/opt/ml\nimage spec\n")


def test_mounts_are_visible_and_read_only_ones_are_not_writable(sandbox: Sandbox) -> None:
    data, model = sandbox.folder("data"), sandbox.folder("model")
    (data / "train.csv").write_text("1,2,3\n")
    image = sandbox.image(
        {
            "train": """
                #!/bin/sh
                cat /opt/ml/input/data/train/train.csv
                touch /opt/ml/input/data/train/new 2>/dev/null && echo input-writable || echo input-read-only
                touch /opt/program/new 2>/dev/null && echo image-writable || echo image-read-only
                echo weights > /opt/ml/model/model.bin && echo model-written
            """.replace("\n                ", "\n")
        }
    )
    mounts = [
        Mount(data, "/opt/ml/input/data/train", read_only=True),
        Mount(model, "/opt/ml/model"),
    ]
    code, output = sandbox.run(sandbox.spec(image, ["train"], mounts=mounts))
    assert code == 0, output
    assert output.split() == ["1,2,3", "input-read-only", "image-read-only", "model-written"]
    assert (model / "model.bin").read_text() == "weights\n"
    assert not (data / "new").exists()


def test_a_single_file_can_be_mounted(sandbox: Sandbox) -> None:
    config = sandbox.folder("config") / "hyperparameters.json"
    config.write_text('{"epochs": "3"}')
    target = Path(f"/opt/ml/input/config/{sandbox.marker}.json")  # as root, an empty mountpoint file
    image = sandbox.image({"train": f"#!/bin/sh\ncat {target}\n"})
    try:
        code, output = sandbox.run(sandbox.spec(image, ["train"], mounts=[Mount(config, str(target), True)]))
    finally:
        target.unlink(missing_ok=True)
    assert (code, output) == (0, '{"epochs": "3"}')


def test_hostname_and_hosts_resolve(sandbox: Sandbox) -> None:
    image = sandbox.image(
        {
            "train": "#!/bin/sh\nhostname\ngetent hosts algo-1\ngetent hosts algo-2 || true\n",
            "report": PYTHON_REPORT,
        },
        venv=True,
    )
    code, output = sandbox.run(sandbox.spec(image, ["train"]))
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "algo-1"
    assert lines[1].split() == ["127.0.0.1", "algo-1"]
    assert len(lines) == 2  # algo-2 is unknown to a single-host job

    code, output = sandbox.run(sandbox.spec(image, ["report"]))
    assert code == 0, output
    report = json.loads(output)
    assert (report["hostname"], report["algo-1"]) == ("algo-1", "127.0.0.1")

    hosts = {"algo-1": "127.0.0.2", "algo-2": "127.0.0.3"}
    code, output = sandbox.run(sandbox.spec(image, ["train"], hostname="algo-2", hosts=hosts))
    assert code == 0, output
    assert [line.split() for line in output.splitlines()] == [
        ["algo-2"],
        ["127.0.0.2", "algo-1"],
        ["127.0.0.3", "algo-2"],
    ]


def test_tmp_is_private(sandbox: Sandbox) -> None:
    name = f"{sandbox.marker}-tmpfile"
    image = sandbox.image({"train": f"#!/bin/sh\necho hello > /tmp/{name}\nls -A /tmp\n"})
    code, output = sandbox.run(sandbox.spec(image, ["train"]))
    assert (code, output) == (0, f"{name}\n")  # and the host's /tmp is not visible either
    assert not Path("/tmp", name).exists()


def test_environment_is_clean(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEPORT_SERVER_SECRET", "must-not-leak")
    image = sandbox.image({}, env={"IMAGE_VAR": "1"})
    code, output = sandbox.run(sandbox.spec(image, ["env"], env={"SM_CHANNELS": '["train"]'}))
    assert code == 0, output
    env = dict(line.split("=", 1) for line in output.splitlines())
    assert env == {
        "PATH": "/opt/program:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root" if os.geteuid() == 0 else "/tmp",  # an unprivileged sandbox cannot write /root
        "HOSTNAME": "algo-1",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "IMAGE_VAR": "1",
        "SM_CHANNELS": '["train"]',
        MARKER_VARIABLE: sandbox.marker,
    }


def test_venv_comes_first_on_path(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": "#!/bin/sh\necho $PATH\ncommand -v python3\n"}, venv=True)
    code, output = sandbox.run(sandbox.spec(image, ["train"]))
    assert code == 0, output
    path, python3 = output.splitlines()
    assert path.startswith(f"{sandbox.venv}/bin:/opt/program:")
    assert python3 == f"{sandbox.venv}/bin/python3"


@pytest.mark.parametrize(
    ("script", "expected"),
    [("exit 0", 0), ("exit 3", 3), ("kill -KILL $$", -signal.SIGKILL), ("kill -USR1 $$", -signal.SIGUSR1)],
)
def test_exit_codes(sandbox: Sandbox, script: str, expected: int) -> None:
    image = sandbox.image({"train": f"#!/bin/sh\n{script}\n"})
    code, _ = sandbox.run(sandbox.spec(image, ["train"]))
    assert code == expected


def test_missing_program_is_127_with_a_message(sandbox: Sandbox) -> None:
    image = sandbox.image({})
    code, output = sandbox.run(sandbox.spec(image, ["serve"]))
    assert code == 127
    assert "executable file not found in $PATH: serve" in output


def test_non_executable_program_is_126(sandbox: Sandbox) -> None:
    image = sandbox.image({})
    (image.root / "train").write_text("#!/bin/sh\n")  # not chmod +x: found by path only
    code, output = sandbox.run(sandbox.spec(image, ["/opt/program/train"]))
    assert code == 126, output


def test_output_streams_while_running(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": "#!/bin/sh\necho epoch 1 >&2\necho epoch 2\nexec sleep 300\n"})
    run = sandbox.start(sandbox.spec(image, ["train"]))
    lines = Lines(run)
    assert lines.next() == b"epoch 1\n"  # stderr and stdout share the pipe
    assert lines.next() == b"epoch 2\n"
    assert run.wait(0.1) is None
    run.kill()
    assert run.wait() == -signal.SIGKILL


def test_terminate_reaches_the_main_process_and_its_children(sandbox: Sandbox) -> None:
    model = sandbox.folder("model")
    script = """
        #!/usr/bin/env python
        import os, signal, sys, time
        child = os.fork()
        if child == 0:
            def child_term(*_):
                open("/opt/ml/model/child-got-sigterm", "w").close()
                os._exit(0)
            signal.signal(signal.SIGTERM, child_term)
            os.write(1, b"child ready\\n")  # one write: print() may split it from main's line
            time.sleep(300)
            os._exit(1)
        def main_term(*_):
            os.waitpid(child, 0)
            print("main got SIGTERM", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, main_term)
        os.write(1, b"main ready\\n")
        time.sleep(300)
    """
    image = sandbox.image({"train": textwrap.dedent(script)}, venv=True)
    run = sandbox.start(sandbox.spec(image, ["train"], mounts=[Mount(model, "/opt/ml/model")]))
    lines = Lines(run)
    assert sorted([lines.next(), lines.next()]) == [b"child ready\n", b"main ready\n"]
    run.terminate()
    assert run.wait(10) == 7
    assert lines.next() == b"main got SIGTERM\n"
    assert (model / "child-got-sigterm").exists()


def test_terminate_right_after_start_is_not_lost(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": "#!/bin/sh\nexec sleep 300\n"})
    for _ in range(5):  # the SIGTERM lands before, during or after the sandbox's setup
        run = sandbox.start(sandbox.spec(image, ["train"]))
        run.terminate()
        assert run.wait(10) == -signal.SIGTERM


def test_a_broken_workdir_is_a_setup_failure(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": "#!/bin/sh\n"}, workdir="/opt/program/missing")
    code, output = sandbox.run(sandbox.spec(image, ["train"]))
    assert code == 125
    assert "working directory /opt/program/missing" in output


def test_kill_ends_a_run_that_ignores_sigterm(sandbox: Sandbox) -> None:
    image = sandbox.image({"serve": "#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho ready\nwait\nwait\n"})
    run = sandbox.start(sandbox.spec(image, ["serve"]))
    Lines(run).until(b"ready")
    run.terminate()
    assert run.wait(1.0) is None  # SIGTERM is ignored by the script and its sleep
    run.kill()
    assert processes_with(sandbox.marker) == []  # nothing left the moment kill() returns
    assert run.wait(0) == -signal.SIGKILL


def test_background_children_do_not_outlive_the_main_process(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": "#!/bin/sh\nsleep 300 &\nsetsid sleep 301 &\necho started\nexit 0\n"})
    run = sandbox.start(sandbox.spec(image, ["train"]))
    assert run.wait(30) == 0
    assert processes_with(sandbox.marker) == []


def test_private_network_has_only_loopback_and_ports_do_not_collide(sandbox: Sandbox) -> None:
    script = """
        #!/usr/bin/env python
        import socket, time
        server = socket.socket()
        server.bind(("0.0.0.0", 8080))
        server.listen()
        client = socket.create_connection(("127.0.0.1", 8080), timeout=5)
        print("bound", sorted(name for _, name in socket.if_nameindex()), flush=True)
        time.sleep(300)
    """
    image = sandbox.image({"serve": textwrap.dedent(script)}, venv=True)
    first = sandbox.start(sandbox.spec(image, ["serve"], network="none"))
    second = sandbox.start(sandbox.spec(image, ["serve"], network="none"))
    assert Lines(first).next() == b"bound ['lo']\n"
    assert Lines(second).next() == b"bound ['lo']\n"
    for run in (first, second):
        run.kill()
        assert run.wait() == -signal.SIGKILL


def test_host_network_is_shared(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": "#!/bin/sh\nls /sys/class/net\n"})
    code, output = sandbox.run(sandbox.spec(image, ["train"]))
    assert code == 0
    assert sorted(output.split()) == sorted(os.listdir("/sys/class/net"))


def test_a_run_outlives_the_thread_that_started_it(sandbox: Sandbox) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits: the spawner thread must fork.
    image = sandbox.image({"train": "#!/bin/sh\necho up\nexec sleep 300\n"})
    runs: list[ProcessRun] = []
    starter = threading.Thread(target=lambda: runs.append(sandbox.start(sandbox.spec(image, ["train"]))))
    starter.start()
    starter.join()
    Lines(runs[0]).until(b"up")
    time.sleep(0.3)
    assert runs[0].wait(0) is None


def test_the_run_folder_is_removed_afterwards(sandbox: Sandbox) -> None:
    image = sandbox.image({"train": "#!/bin/sh\ntrue\n"})
    spec = sandbox.spec(image, ["train"])
    code, _ = sandbox.run(spec)
    assert code == 0
    assert list(spec.scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hostname", "algo_1", "invalid hostname"),
        ("network", "bridge", "network must be one of"),
        ("hosts", {"algo-2": "not-an-ip"}, "invalid address"),
        ("mounts", [Mount(Path("/"), "/proc/x")], "reserved"),
        ("mounts", [Mount(Path("/"), "relative/path")], "normalised absolute path"),
        ("argv", [], "argv"),
    ],
)
def test_invalid_specs_are_refused(sandbox: Sandbox, field: str, value: object, message: str) -> None:
    image = sandbox.image({"train": "#!/bin/sh\n"})
    fields: dict[str, object] = {"argv": ["train"], field: value}
    argv = fields.pop("argv")
    spec = sandbox.spec(image, argv, **fields)  # type: ignore[arg-type]
    with pytest.raises(ValidationException, match=message):
        sandbox.start(spec)


# --------------------------------------------------------------------------- no orphans

HELPER = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from homeport.images.model import LocalImage
from homeport.runtimes.base import RunSpec
from homeport.runtimes.process import ProcessRuntime

image = LocalImage(name="t", tag="latest", root=Path(sys.argv[2]), at="/opt/program")
spec = RunSpec(
    name="orphans", image=image, argv=["train"], env={"HOMEPORT_TEST_MARKER": sys.argv[3]},
    mounts=[], scratch=Path(sys.argv[4]), network=sys.argv[5],
)
layers = sys.argv[6]
run = ProcessRuntime(parent_death_signal=layers != "lifeline-only").start(spec)
print("first line:", run.output.readline().decode().strip(), flush=True)
if layers == "pdeathsig-with-leaked-lifeline":
    # A child forked without exec keeps a copy of the server's end of the lifeline, so its
    # end-of-file never comes: only the parent-death signal can end the run.
    leaker = os.fork()
    if leaker == 0:
        time.sleep(600)
        os._exit(0)
    print("leaker", leaker, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(
    ("layers", "network"),
    [
        ("pdeathsig", "host"),
        ("pdeathsig", "none"),
        ("lifeline-only", "host"),
        ("lifeline-only", "none"),
        ("pdeathsig-with-leaked-lifeline", "host"),
    ],
)
def test_no_orphans_when_the_server_is_sigkilled(sandbox: Sandbox, layers: str, network: str) -> None:
    image = sandbox.image({"train": "#!/bin/sh\nsleep 300 &\nsleep 301 &\necho started\nexec sleep 302\n"})
    helper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HELPER,
            str(REPO),
            str(image.root),
            sandbox.marker,
            str(sandbox.base / f"scratch-{sandbox.marker}"),
            network,
            layers,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    leaker = None
    try:
        assert helper.stdout is not None
        assert helper.stdout.readline() == "first line: started\n"
        if layers == "pdeathsig-with-leaked-lifeline":
            leaker = int(helper.stdout.readline().split()[1])
        # The helper, PID 1, the shell exec'd into `sleep 302` and two background sleeps.
        assert len(processes_with(sandbox.marker)) >= 5
        helper.send_signal(signal.SIGKILL)
        helper.wait()
        deadline = time.monotonic() + 5
        while (left := set(processes_with(sandbox.marker)) - {leaker}) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == set()
    finally:
        helper.kill()
        helper.wait()
        if leaker is not None:
            os.kill(leaker, signal.SIGKILL)
        kill_leftovers(sandbox.marker)


# --------------------------------------------------------------------------- unprivileged

NOBODY_HELPER = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from homeport.errors import RuntimeUnavailable
from homeport.images.model import LocalImage
from homeport.runtimes.base import Mount, RunSpec
from homeport.runtimes.process import ProcessRuntime

base, top = Path(sys.argv[2]), sys.argv[3]
runtime = ProcessRuntime()
try:
    runtime.check()
except RuntimeUnavailable as exc:
    print(json.dumps({"unavailable": exc.message}))
    sys.exit(0)
image = LocalImage(name="t", tag="latest", root=base / "image", at=f"{top}/program")
spec = RunSpec(
    name="nobody", image=image, argv=["train"], env={"HOMEPORT_TEST_MARKER": sys.argv[4]},
    mounts=[Mount(base / "data", f"{top}/ml/input/data/train", read_only=True),
            Mount(base / "model", f"{top}/ml/model")],
    scratch=base / "scratch", network="none",
)
run = runtime.start(spec)
output = run.output.read().decode()
print(json.dumps({"code": run.wait(30), "output": output}))
"""

NOBODY_TRAIN = """#!/bin/sh
id -u
hostname
getent hosts algo-1
cat {top}/ml/input/data/train/train.csv
touch {top}/ml/input/data/train/new 2>/dev/null && echo input-writable || echo input-read-only
echo weights > {top}/ml/model/model.bin && echo model-written
ls /opt | grep -c .
exit 5
"""


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def _interpreter_for(user: str | None) -> str:
    """A Python >= 3.11 that ``user`` may execute (the server's may sit under a private /root)."""
    candidates = [os.path.realpath(sys.executable), getattr(sys, "_base_executable", ""), "/usr/bin/python3"]
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            _as_user(user, [candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"]),
            capture_output=True,
        )
        if probe.returncode == 0:
            return candidate
    raise AssertionError(f"no Python >= 3.11 that {user} can run among {candidates}")


@pytest.fixture
def nobody_folder() -> Iterator[Path]:
    # pytest's tmp_path sits in a root-only folder; nobody needs its own.
    folder = Path(tempfile.mkdtemp(prefix="homeport-nobody-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_unprivileged_user(nobody_folder: Path, sandbox: Sandbox) -> None:
    # As root: become nobody. Run by an ordinary user, the tests are already unprivileged.
    user = "nobody" if os.geteuid() == 0 else None
    top = f"/opt/{sandbox.marker}"  # does not exist: the sandbox must make it without root
    for name in ("image", "data", "model", "scratch"):
        (nobody_folder / name).mkdir()
    (nobody_folder / "data" / "train.csv").write_text("1,2,3\n")
    write_script(nobody_folder / "image", "train", NOBODY_TRAIN.format(top=top))
    if user is not None:
        for path in (nobody_folder / "model", nobody_folder / "scratch"):
            shutil.chown(path, user)
    probe = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "true"]
    userns_allowed = subprocess.run(_as_user(user, probe), capture_output=True).returncode == 0
    helper = [_interpreter_for(user), "-c", NOBODY_HELPER, str(REPO), str(nobody_folder), top, sandbox.marker]
    result = subprocess.run(
        _as_user(user, helper),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    if not userns_allowed:
        assert "cannot create Linux namespaces" in report["unavailable"]
        return
    assert "unavailable" not in report, report
    assert report["code"] == 5, report["output"]
    lines = report["output"].splitlines()
    assert [line.split() for line in lines[:6]] == [
        ["0"],  # root inside, nobody outside
        ["algo-1"],
        ["127.0.0.1", "algo-1"],
        ["1,2,3"],
        ["input-read-only"],
        ["model-written"],
    ]
    # /opt was shadowed, not written: its entries are all there (+ the new folder), the host is untouched.
    assert int(lines[6]) == len(os.listdir("/opt")) + 1
    assert not Path(top).exists()
    assert (nobody_folder / "model" / "model.bin").read_text() == "weights\n"
    assert processes_with(sandbox.marker) == []
