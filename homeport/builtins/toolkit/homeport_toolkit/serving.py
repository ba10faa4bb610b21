"""``serve``: the inference server of Homeport's built-in images.

``main(default_handler="sklearn_handler")`` is the whole ``serve`` script of an image. It

1. downloads a remote ``SAGEMAKER_SUBMIT_DIRECTORY`` (``s3://.../sourcedir.tar.gz``) into a
   private folder, then pip-installs ``requirements.txt`` from the user's code folder
   (``<base>/model/code``, or ``SAGEMAKER_SUBMIT_DIRECTORY``) once, if there is one;
2. serves :data:`homeport_toolkit.app.app` with uvicorn on ``0.0.0.0:$SAGEMAKER_BIND_TO_PORT``
   (default 8080): ``SAGEMAKER_MODEL_SERVER_WORKERS`` worker processes (default: the CPU count)
   under uvicorn's multiprocess supervisor, httptools and uvloop when installed, no access log.
   Each worker resolves the handler functions and loads the model once, at startup.

SIGTERM stops it gracefully (in-flight requests finish). The process exits 0 after a requested
stop and 1 when the server could not start (the model failed to load, say; the reason is in the
log).

Spawned workers re-run the ``serve`` script as ``__mp_main__`` (multiprocessing's spawn start
method does that for the main script); ``main`` notices it is inside such a child and returns at
once, so the scripts need no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import files
from .app import DEFAULT_HANDLER_ENV, LOG_FORMAT, WORKERS_ENV
from .handler import SUBMIT_DIR_ENV, user_code_dir

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
WORKERS_SETTING_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
LOG_LEVEL_ENV = "SAGEMAKER_CONTAINER_LOG_LEVEL"
# Not a SageMaker setting: lets tests and benchmarks bind to loopback only.
HOST_ENV = "HOMEPORT_TOOLKIT_HOST"
APP = "homeport_toolkit.app:app"
GRACEFUL_SHUTDOWN_S = 20  # SageMaker sends SIGKILL 30 s after SIGTERM

log = logging.getLogger("homeport_toolkit")


def worker_count() -> int:
    value = os.environ.get(WORKERS_SETTING_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            log.warning("%s=%r is not a number; using the CPU count", WORKERS_SETTING_ENV, value)
    return os.cpu_count() or 1


def log_level() -> str:
    """SAGEMAKER_CONTAINER_LOG_LEVEL (a number, as the SDK sends it, or a name) as uvicorn's level name."""
    value = os.environ.get(LOG_LEVEL_ENV, "").strip()
    if not value:
        return "info"
    if value.isdigit():
        name = logging.getLevelName(int(value))
        return name.lower() if isinstance(name, str) and not name.startswith("Level") else "info"
    known = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "TRACE")
    return value.lower() if value.upper() in known else "info"


def fetch_submit_directory() -> None:
    """A remote ``SAGEMAKER_SUBMIT_DIRECTORY`` (``s3://.../sourcedir.tar.gz``, as the SDK sets it
    for framework models it does not repack) is downloaded and unpacked once, before the workers
    start, into a private folder that the variable then names for them."""
    submit = os.environ.get(SUBMIT_DIR_ENV, "")
    if not submit.startswith("s3://"):
        return
    target = Path(tempfile.mkdtemp(prefix="homeport-submit-"))
    log.info("Downloading the inference code from %s", submit)
    files.download_and_extract(submit, target)
    os.environ[SUBMIT_DIR_ENV] = str(target)


def install_requirements() -> None:
    """``pip install -r requirements.txt`` from the user's code folder, when it has one."""
    requirements = user_code_dir() / "requirements.txt"
    if not requirements.is_file():
        return
    log.info("Installing the requirements in %s", requirements)
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)]
    result = subprocess.run(command, cwd=str(requirements.parent), check=False)
    if result.returncode != 0:
        raise SystemExit(f"pip install -r {requirements} failed with exit code {result.returncode}")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO) if level != "trace" else logging.DEBUG,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )


def _in_spawned_child() -> bool:
    """True while multiprocessing's spawn start method prepares or runs a child of this process.

    While the child re-runs the main script (before its target starts) ``parent_process()`` is
    still None; the current process is marked as inheriting then (what multiprocessing's own
    "bootstrapping phase" check reads), and the script runs as a temporary ``__mp_main__``
    module (``__mp_main__`` is ``__main__`` in any other process).
    """
    return (
        multiprocessing.parent_process() is not None
        or bool(getattr(multiprocessing.current_process(), "_inheriting", False))
        or sys.modules.get("__mp_main__") is not sys.modules.get("__main__")
    )


def main(default_handler: str | None = None) -> None:
    """Serve until SIGTERM; exits the process (0 after a requested stop, 1 when startup failed)."""
    if _in_spawned_child():
        return  # the script re-run inside a spawned worker: the worker serves, not this
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    level = log_level()
    _configure_logging(level)
    fetch_submit_directory()
    install_requirements()

    workers = worker_count()
    os.environ[DEFAULT_HANDLER_ENV] = default_handler or ""
    os.environ[WORKERS_ENV] = str(workers)
    config = uvicorn.Config(
        APP,
        host=os.environ.get(HOST_ENV) or "0.0.0.0",
        port=int(os.environ.get(PORT_ENV) or 8080),
        workers=workers,
        http="httptools" if importlib.util.find_spec("httptools") else "auto",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        lifespan="on",
        access_log=False,
        log_level=level,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    log.info("Starting %d worker(s) on %s:%d", workers, config.host, config.port)
    if workers > 1:
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
        failed = any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)
        sys.exit(1 if failed else 0)
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits with its own code (3) when the startup fails
        if exc.code not in (0, None, STARTUP_FAILURE):
            raise
    sys.exit(0 if server.started else 1)
