"""``train``: script mode, as sagemaker-training 5.1.4 runs a user's entry point.

``main()`` (the ``train`` script of the framework images calls ``sys.exit(main())``):

1. reads the three config files into a :class:`~homeport_toolkit.environment.TrainingEnvironment`;
2. puts ``sagemaker_submit_directory`` (``s3://…/sourcedir.tar.gz``, a local archive or folder)
   into ``<base>/code``, extracting safely;
3. installs ``requirements.txt`` from there (``python -m pip install -r``), or the package when
   the folder has a ``setup.py`` (``pip install .``);
4. exports the ``SM_*`` environment, ``SAGEMAKER_JOB_NAME``, ``CURRENT_HOST``,
   ``SAGEMAKER_REGION`` and ``PYTHONPATH``;
5. runs the entry point in ``<base>/code`` with the user hyperparameters as arguments:
   ``python -- train.py --epochs 3`` for a ``.py`` file, ``python -m pkg …`` for a package,
   ``/bin/sh -c "./train.sh …"`` for anything else. Its stdout is inherited; its stderr is
   streamed through (and its tail kept for the failure message). SIGTERM/SIGINT are forwarded.

Success writes ``<base>/output/success`` and returns 0. A failing script returns its exit code
(128+N when killed by signal N) and writes ``<base>/output/failure`` unless the script wrote one,
worded as SageMaker reports it::

    AlgorithmError: ExecuteUserScriptError:
    ExitCode 2
    ErrorMessage "ValueError: no data"
    Command "/usr/bin/python3 -- train.py --epochs 3", exit code: 2

Errors before the script runs (no entry point, an unsafe archive, pip failing) return 1 with an
``AlgorithmError: …`` failure file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from . import files, paths
from .environment import TrainingEnvironment
from .errors import ClientError

log = logging.getLogger("homeport_toolkit")

SUCCESS = 0
DEFAULT_FAILURE = 1
FAILURE_REASON_LIMIT = 1024  # SageMaker keeps the failure file's first 1024 characters
HOST_WAIT_S = 15 * 60
_STDERR_TAIL_BYTES = 8192
# A path inside the code folder: no leading '-' or '/', no '.'/'..' segments, plain characters.
_SAFE_ENTRY_POINT = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._+-]*(/[A-Za-z0-9._+-]+)*$")

PYTHON_PACKAGE = "python-package"
PYTHON_PROGRAM = "python-program"
COMMAND = "command"


def validate_entry_point(entry_point: str | None) -> str:
    if not entry_point:
        raise ClientError(
            "The training entry point name is empty. Set the 'sagemaker_program' hyperparameter to the "
            "name of the script to run, relative to your source directory (for example 'train.py')."
        )
    if not _SAFE_ENTRY_POINT.match(entry_point) or any(s in (".", "..") for s in entry_point.split("/")):
        raise ClientError(
            f"The training entry point {entry_point!r} cannot be used: it must be a path inside the source "
            "directory made of letters, digits, '.', '_', '+', '-' and '/', not starting with '-' or '/' "
            "and without '.' or '..' segments (for example 'train.py' or 'bin/train.sh')."
        )
    return entry_point


def entry_point_type(code_dir: Path, entry_point: str) -> str:
    """As the toolkit decides: ``.sh`` → command; a ``setup.py`` → package; ``.py`` → program."""
    if entry_point.endswith(".sh"):
        return COMMAND
    if (code_dir / "setup.py").is_file():
        return PYTHON_PACKAGE
    if entry_point.endswith(".py"):
        return PYTHON_PROGRAM
    return COMMAND


def build_command(kind: str, entry_point: str, args: Sequence[str]) -> list[str]:
    if kind == PYTHON_PACKAGE:
        return [sys.executable, "-m", re.sub(r"\.py$", "", entry_point).replace("/", "."), *args]
    if kind == PYTHON_PROGRAM:
        return [sys.executable, "--", entry_point, *args]
    quoted = " ".join(shlex.quote(arg) for arg in args)
    return ["/bin/sh", "-c", f"./{shlex.quote(entry_point)} {quoted}"]


def _pip(arguments: list[str], code_dir: Path, what: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *arguments]
    log.info("Installing %s: %s", what, " ".join(command))
    result = subprocess.run(command, cwd=str(code_dir), check=False)
    if result.returncode != 0:
        raise ClientError(
            f'InstallRequirementsError:\nExitCode {result.returncode}\nCommand "{" ".join(command)}"'
        )


def install(code_dir: Path, entry_point: str, kind: str) -> None:
    """Requirements (or the package itself), and the executable bit of a command entry point."""
    requirements = code_dir / "requirements.txt"
    if kind == PYTHON_PACKAGE:
        extra = ["-r", "requirements.txt"] if requirements.is_file() else []
        _pip([".", *extra], code_dir, "the source directory as a package")
    elif requirements.is_file():
        _pip(["-r", "requirements.txt"], code_dir, "requirements.txt")
    target = code_dir / entry_point
    if kind == PYTHON_PACKAGE:
        return
    if not target.is_file():
        raise ClientError(f"The training entry point {entry_point!r} is not in the source folder {code_dir}")
    if kind == COMMAND:
        os.chmod(target, 0o777)


def wait_for_hosts(env: TrainingEnvironment, timeout: float = HOST_WAIT_S) -> None:
    """Wait until the other hosts' names resolve (skipped with one host or SM_STUDIO_LOCAL_MODE)."""
    if os.environ.get("SM_STUDIO_LOCAL_MODE", "false").lower() == "true":
        return
    deadline = time.monotonic() + timeout
    for host in env.hosts:
        if host == env.current_host:
            continue
        while True:
            try:
                socket.gethostbyname(host)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ClientError(f"the host {host} did not resolve within {timeout:.0f} s") from None
                time.sleep(1)


class _StderrTee(threading.Thread):
    """Copies the child's stderr to ours as it comes, keeping the last few KB."""

    def __init__(self, stream: int) -> None:
        super().__init__(daemon=True, name="stderr-tee")
        self._fd = stream
        self.tail = bytearray()

    def run(self) -> None:
        out = getattr(sys.stderr, "buffer", None)
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sys.stderr.write(chunk.decode("utf-8", "replace"))
                sys.stderr.flush()
            self.tail += chunk
            if len(self.tail) > _STDERR_TAIL_BYTES:
                del self.tail[: len(self.tail) - _STDERR_TAIL_BYTES]


def run_entry_point(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run the user's process to its end: (exit status as the shell reports it, stderr tail)."""
    process = subprocess.Popen(command, cwd=str(cwd), env=os.environ.copy(), stderr=subprocess.PIPE)
    assert process.stderr is not None
    tee = _StderrTee(process.stderr.fileno())
    tee.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if process.poll() is None:
            process.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, forward)
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    tee.join(timeout=5)  # a grandchild may still hold the pipe open
    process.stderr.close()
    if code < 0:
        code = 128 - code
    return code, bytes(tee.tail).decode("utf-8", "replace")


def _dedupe(text: str) -> str:
    return "\n".join(dict.fromkeys(text.split("\n"))).strip()


def script_failure(code: int, command: list[str], stderr_tail: str) -> str:
    """The failure reason for a failing script, within SageMaker's 1024 characters."""
    extra = ""
    if code == 137:
        extra = '\nExtraInfo "OutOfMemory: Process killed by SIGKILL (signal 9)"'
    head = f'AlgorithmError: ExecuteUserScriptError:\nExitCode {code}\nErrorMessage "'
    tail = f'"{extra}\nCommand "{" ".join(command)}", exit code: {code}'
    budget = max(0, FAILURE_REASON_LIMIT - len(head) - len(tail))
    message = _dedupe(stderr_tail)
    if len(message) > budget:
        message = message[len(message) - budget :]
        newline = message.find("\n")
        if 0 <= newline < len(message) - 1:
            message = message[newline + 1 :]  # start at a line boundary
    return head + message + tail


def _configure_logging(level: object) -> None:
    number = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    logging.basicConfig(
        level=number if isinstance(number, int) else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stdout,
    )


def _log_invocation(env: TrainingEnvironment, command: list[str]) -> None:
    log.info(
        "Training Env:\n\n%s\n\nInvoking script with the following command:\n\n%s\n",
        json.dumps(env.training_env(), indent=4, sort_keys=True, default=str),
        " ".join(shlex.quote(part) for part in command),
    )


def train() -> int:
    """Everything, raising ClientError (the job's fault) or anything else (the toolkit's)."""
    env = TrainingEnvironment.read()
    _configure_logging(env.log_level)
    entry_point = validate_entry_point(env.user_entry_point)
    code_dir = paths.code_dir()
    files.download_and_extract(env.module_dir, code_dir)
    kind = entry_point_type(code_dir, entry_point)
    install(code_dir, entry_point, kind)
    os.environ.update(env.process_env())
    wait_for_hosts(env)
    command = build_command(kind, entry_point, env.to_cmd_args())
    _log_invocation(env, command)
    sys.stdout.flush()
    code, stderr_tail = run_entry_point(command, code_dir)
    if code == SUCCESS:
        log.info("Reporting training SUCCESS")
        files.write_success_file()
        return SUCCESS
    log.error("Reporting training FAILURE: the entry point exited with code %d", code)
    files.write_failure_file(script_failure(code, command, stderr_tail))
    return code


def main() -> int:
    """The ``train`` entry point: the exit status for ``sys.exit``."""
    try:
        return train()
    except ClientError as exc:
        message = f"AlgorithmError: {exc}"
        print(message, file=sys.stderr)
        files.write_failure_file(message[:FAILURE_REASON_LIMIT])
        return DEFAULT_FAILURE
    except Exception as exc:  # noqa: BLE001 - reported in the failure file, then a failed job
        traceback.print_exc(file=sys.stderr)
        message = f"AlgorithmError: Framework Error: {type(exc).__name__}: {exc}"
        files.write_failure_file(message[:FAILURE_REASON_LIMIT])
        errno = getattr(exc, "errno", None)
        return errno if isinstance(errno, int) and 0 < errno < 256 else DEFAULT_FAILURE
