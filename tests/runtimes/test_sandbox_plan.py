"""The sandbox plan: environment, PATH, hosts file and mount order derived from a RunSpec."""

from __future__ import annotations

import marshal
from pathlib import Path

from homeport.images.model import LocalImage
from homeport.runtimes.base import Mount, RunSpec
from homeport.runtimes.sandbox_plan import build_plan, hosts_file, mount_entries, sandbox_env

IMAGE = LocalImage(
    name="t", tag="latest", root=Path("/images/t"), at="/opt/program", env={"A": "image", "B": "image"}
)


def spec(**fields: object) -> RunSpec:
    values: dict[str, object] = {"name": "job/x", "image": IMAGE, "argv": ["train"], "env": {}, "mounts": []}
    values.update(fields)
    return RunSpec(**values)  # type: ignore[arg-type]


def test_environment_layers_spec_over_image_over_defaults() -> None:
    env = sandbox_env(spec(env={"B": "spec", "HOME": "/home/me"}), home="/root")
    assert env == {
        "PATH": "/opt/program:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/home/me",
        "HOSTNAME": "algo-1",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "A": "image",
        "B": "spec",
    }


def test_venv_bin_comes_first_on_path() -> None:
    image = LocalImage(
        name="t", tag="latest", root=Path("/images/t"), at="/opt/program", venv=Path("/venvs/t")
    )
    assert sandbox_env(spec(image=image), home="/root")["PATH"].startswith("/venvs/t/bin:/opt/program:")


def test_hosts_file_maps_the_hostname_and_every_host() -> None:
    assert hosts_file(spec()).splitlines()[2] == "127.0.0.1\talgo-1"
    text = hosts_file(spec(hostname="algo-2", hosts={"algo-1": "127.0.0.2", "algo-2": "127.0.0.3"}))
    assert text.splitlines()[2:] == ["127.0.0.3\talgo-2", "127.0.0.2\talgo-1"]
    assert "127.0.0.1\tlocalhost" in text.splitlines()


def test_mounts_parents_first_and_image_read_only() -> None:
    mounts = [
        Mount(Path("/runs/x/train"), "/opt/ml/input/data/train", read_only=True),
        Mount(Path("/runs/x/input"), "/opt/ml/input"),
    ]
    entries = mount_entries(spec(mounts=mounts), Path("/runs/x/tmp"), Path("/runs/x/hosts"))
    assert [(e.target, e.read_only) for e in entries] == [
        ("/tmp", False),
        ("/opt/program", True),
        ("/etc/hosts", False),
        ("/opt/ml/code", False),
        ("/opt/ml/input", False),
        ("/opt/ml/input/data/train", True),
    ]
    code = next(e for e in entries if e.target == "/opt/ml/code")
    assert code.source == Path("/runs/x/opt-ml-code")  # the run's own, never the host's


def test_an_image_at_opt_ml_code_is_not_hidden() -> None:
    image = LocalImage(name="t", tag="latest", root=Path("/images/t"), at="/opt/ml/code")
    entries = mount_entries(spec(image=image), Path("/runs/x/tmp"), Path("/runs/x/hosts"))
    assert [e.source for e in entries if e.target == "/opt/ml/code"] == [Path("/images/t")]


def test_plan_is_plain_data_for_marshal() -> None:

    plan = build_plan(
        spec(network="none", image=IMAGE), Path("/r/tmp"), Path("/r/hosts"), user_namespace=True
    )
    assert marshal.loads(marshal.dumps(plan)) == plan
    assert plan["private_network"] is True
    assert plan["env"]["HOME"] == "/tmp"  # an unprivileged sandbox cannot write the host's /root
    assert plan["cwd"] == "/opt/program"
