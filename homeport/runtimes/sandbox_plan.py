"""What a sandbox will look like: a RunSpec checked and turned into the plan PID 1 executes.

Pure functions, no processes: validation of everything that reaches the sandbox (paths,
hostnames, addresses, environment), the environment and PATH, the generated /etc/hosts and
the ordered mount list. The plan is a plain dict of str/bool/list values because the sandbox
init reads it with ``marshal`` (start-up time: no ``json`` import there).

Concurrency: no shared state; safe from any thread.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.errors import InternalFailure, ValidationException
from homeport.images.model import LocalImage
from homeport.runtimes.base import RunSpec

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETWORKS = ("host", "none")

_HOSTNAME = re.compile(
    r"^(?=.{1,64}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
_ENV_NAME = re.compile(r"^[^=\x00]+$")
# Mounting over these would break the sandbox itself (the init needs /proc; / cannot be covered).
_RESERVED_TARGETS = ("/", "/proc", "/dev", "/sys")


@dataclass(frozen=True)
class MountEntry:
    source: Path
    target: str
    read_only: bool


def local_image(spec: RunSpec) -> LocalImage:
    """The run's image as a folder; the process runtime runs nothing else."""
    if not isinstance(spec.image, LocalImage):
        raise InternalFailure(
            f"run {spec.name}: the process runtime runs images registered with `homeport image add`, "
            f"not the engine image {spec.image.reference}"
        )
    return spec.image


def check_target(target: str, what: str) -> None:
    if not target.startswith("/") or os.path.normpath(target) != target or "\x00" in target:
        raise ValidationException(f"{what} must be a normalised absolute path, got {target!r}")
    for reserved in _RESERVED_TARGETS:
        if target == reserved or (reserved != "/" and target.startswith(reserved + "/")):
            raise ValidationException(f"{what} {target!r} is reserved inside the sandbox")


def check_hostname(name: str) -> None:
    if not _HOSTNAME.match(name):
        raise ValidationException(f"invalid hostname {name!r}")


def validate(spec: RunSpec) -> None:
    """Raise ValidationException for anything the sandbox cannot honour."""
    image = local_image(spec)
    if not spec.command_line or not spec.command_line[0]:
        raise ValidationException("the command to run (argv) is empty")
    if any("\x00" in arg for arg in spec.command_line):
        raise ValidationException("argv must not contain NUL characters")
    if spec.network not in NETWORKS:
        raise ValidationException(f"network must be one of {', '.join(NETWORKS)}, got {spec.network!r}")
    check_hostname(spec.hostname)
    for name, address in spec.hosts.items():
        check_hostname(name)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValidationException(f"invalid address {address!r} for host {name!r}") from None
    check_target(image.at, "image location")
    if image.workdir is not None:
        check_target(image.workdir, "working directory")
    for mount in spec.mounts:
        check_target(mount.target, "mount target")
    for env in (image.env, spec.env):
        for key, value in env.items():
            if not _ENV_NAME.match(key) or "\x00" in value:
                raise ValidationException(f"invalid environment variable {key!r}")


def sandbox_path(spec: RunSpec) -> str:
    image = local_image(spec)
    # The venv first so `#!/usr/bin/env python` and `python3` are the image's interpreter.
    folders = [f"{image.venv}/bin"] if image.venv is not None else []
    return ":".join([*folders, image.at, STANDARD_PATH])


def sandbox_env(spec: RunSpec, home: str) -> dict[str, str]:
    """The whole environment of the user's process: nothing leaks from the server's."""
    image = local_image(spec)
    env = {
        "PATH": sandbox_path(spec),
        "HOME": home,
        "HOSTNAME": spec.hostname,
        "LANG": "C.UTF-8",
        # Logs are streamed live; a pipe would otherwise make Python block-buffer them.
        "PYTHONUNBUFFERED": "1",
    }
    env.update(image.env)
    env.update(spec.env)
    return env


def hosts_file(spec: RunSpec) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{spec.hosts.get(spec.hostname, '127.0.0.1')}\t{spec.hostname}",
    ]
    lines += [f"{address}\t{name}" for name, address in spec.hosts.items() if name != spec.hostname]
    return "\n".join(lines) + "\n"


CODE_DIR = "/opt/ml/code"


def private_code_dir(private_tmp: Path) -> Path:
    """The run's own ``/opt/ml/code`` (next to its private /tmp in the run folder)."""
    return private_tmp.with_name("opt-ml-code")


def mount_entries(spec: RunSpec, private_tmp: Path, hosts: Path) -> list[MountEntry]:
    """Every bind mount, parents before children (a stable sort on path depth).

    ``/opt/ml/code`` is where framework toolkits unpack ``sagemaker_submit_directory``: each
    run gets its own empty one, never the host's, unless the image itself lives there.
    """
    image = local_image(spec)
    entries = [
        MountEntry(private_tmp, "/tmp", read_only=False),
        MountEntry(image.root, image.at, read_only=True),
    ]
    covered = image.at == CODE_DIR or any(m.target == CODE_DIR for m in spec.mounts)
    if not covered:
        entries.append(MountEntry(private_code_dir(private_tmp), CODE_DIR, read_only=False))
    if image.venv is not None:
        # At its own path, read-only: it may live under the host's /tmp, which is hidden.
        entries.append(MountEntry(image.venv, str(image.venv), read_only=True))
    entries += [MountEntry(m.source, m.target, m.read_only) for m in spec.mounts]
    entries.append(MountEntry(hosts, "/etc/hosts", read_only=False))
    return sorted(entries, key=lambda entry: entry.target.count("/"))


def build_plan(spec: RunSpec, private_tmp: Path, hosts: Path, user_namespace: bool) -> dict[str, Any]:
    image = local_image(spec)
    # An unprivileged user's sandbox root cannot write the host's /root.
    env = sandbox_env(spec, home="/tmp" if user_namespace else "/root")
    return {
        "hostname": spec.hostname,
        "private_network": spec.network == "none",
        "mounts": [
            (str(entry.source), entry.target, entry.read_only)
            for entry in mount_entries(spec, private_tmp, hosts)
        ],
        "argv": spec.command_line,
        "env": env,
        "cwd": image.workdir or image.at,
    }
