"""ServingInstance with the real process runtime: sandboxes, private networks, real HTTP.

The image is a folder with one ``serve`` script: a ``http.server`` app that answers ``/ping``
and echoes, on ``/invocations``, what the container sees (the model file, whether the model
folder is writable, its hostname and environment). ``SERVE_MODE`` in its environment makes it
misbehave in the ways the tests need. The interpreter is the tests' own venv
(``LocalImage(venv=Path(sys.prefix))``), so ``#!/usr/bin/env python`` resolves inside.

Every instance carries a unique marker in its environment and in its scratch folder's name
(which appears in the sandbox launcher's argv), so a /proc scan finds each of its processes;
the teardown kills any survivor by PID.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport.hosting.instance import InstanceFailed, ServingInstance, StartCancelled
from homeport.hosting.netns import connect_in_netns
from homeport.images.model import LocalImage
from homeport.logs.streams import LogStore, LogWriter
from homeport.runtimes.process import ProcessRuntime

MARKER_VARIABLE = "HOMEPORT_TEST_MARKER"

SERVE = r"""#!/usr/bin/env python
import errno, json, os, signal, socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

mode = os.environ.get("SERVE_MODE", "ok")
print(f"serve: starting in mode {mode}", flush=True)
if mode == "exit3":
    print("serve: loading the model failed: boom", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, lambda *_: print("serve: ignoring SIGTERM", flush=True))
else:
    def on_term(*_):
        print("serve: got SIGTERM, shutting down", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)


def model_writable():
    try:
        with open("/opt/ml/model/probe", "w") as fh:
            fh.write("x")
        return "yes"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        print("serve: " + fmt % args, flush=True)

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ping":
            self.reply(503 if mode == "sick" else 200, b"")
        else:
            self.reply(404, b"")

    def do_POST(self):
        if self.path != "/invocations":
            return self.reply(404, b"")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            model = open("/opt/ml/model/model.txt").read()
        except OSError as exc:
            model = f"<{exc.strerror}>"
        answer = {
            "model": model,
            "model_dir": sorted(os.listdir("/opt/ml/model")),
            "writable": model_writable(),
            "hostname": socket.gethostname(),
            "greeting": os.environ.get("GREETING"),
            "body": body.decode(),
        }
        self.reply(200, json.dumps(answer).encode())


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


# -- helpers -----------------------------------------------------------------------------------


def processes_with(marker: str) -> list[int]:
    """PIDs whose argv or environment contains ``marker`` (zombies have neither)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{entry}/{part}").read_bytes()
            except OSError:
                continue
            if needle in data:
                found.append(int(entry))
                break
    return found


def invoke(instance: ServingInstance, body: bytes = b"hello") -> dict[str, Any]:
    """POST /invocations inside the instance's network namespace; the decoded JSON answer."""
    sock = connect_in_netns(instance.netns_pid, 8080, timeout=5)
    conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=5)
    conn.sock = sock
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "text/plain"})
        response = conn.getresponse()
        assert response.status == 200
        answer: dict[str, Any] = json.loads(response.read())
        return answer
    finally:
        conn.close()


class Harness:
    """Builds instances for one test; the teardown stops them and kills any survivor by PID."""

    def __init__(self, base: Path, runtime: ProcessRuntime) -> None:
        self.base = base
        self.runtime = runtime
        self.marker = f"hpt-{uuid.uuid4().hex}"
        self.logs = LogStore(base / "logs")
        self.instances: list[ServingInstance] = []
        self.writers: list[LogWriter] = []
        root = base / "image"
        root.mkdir()
        serve = root / "serve"
        serve.write_text(SERVE)
        serve.chmod(0o755)
        self.image = LocalImage(
            name="echo", tag="latest", root=root, at="/opt/program", venv=Path(sys.prefix)
        )

    def model(self, name: str, text: str) -> Path:
        folder = self.base / "models" / name
        folder.mkdir(parents=True)
        (folder / "model.txt").write_text(text)
        return folder

    def instance(
        self,
        name: str,
        model_dir: Path | None,
        mode: str = "ok",
        env: dict[str, str] | None = None,
        **kw: Any,
    ) -> ServingInstance:
        writer = self.logs.writer("Endpoints", f"ep/{name}")
        self.writers.append(writer)
        instance = ServingInstance(
            f"ep/AllTraffic/{name}",
            self.runtime,
            self.image,
            model_dir,
            {MARKER_VARIABLE: self.marker, "SERVE_MODE": mode, **(env or {})},
            writer,
            self.base / f"scratch-{self.marker}",
            **kw,
        )
        self.instances.append(instance)
        return instance

    def log_messages(self, name: str) -> list[str]:
        return [event.message for event in self.logs.read("Endpoints", f"ep/{name}")]

    def close(self) -> None:
        for instance in self.instances:
            instance.stop(grace=0)
        for writer in self.writers:
            writer.close()
        for pid in processes_with(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def runtime() -> ProcessRuntime:
    return ProcessRuntime()


@pytest.fixture
def harness(tmp_path: Path, runtime: ProcessRuntime) -> Iterator[Harness]:
    box = Harness(tmp_path, runtime)
    yield box
    box.close()


# -- serving -----------------------------------------------------------------------------------


def test_two_instances_serve_on_port_8080_at_once(harness: Harness) -> None:
    first = harness.instance("a", harness.model("a", "model A"), env={"GREETING": "hi"})
    second = harness.instance("b", harness.model("b", "model B"), hostname="my-container")
    first.start()
    second.start()

    first.wait_ready(timeout=30)
    second.wait_ready(timeout=30)

    assert first.netns_pid != second.netns_pid
    assert first.alive() and second.alive() and first.ping() and second.ping()
    one, two = invoke(first, b"x1"), invoke(second, b"x2")
    assert (one["model"], one["body"], one["greeting"]) == ("model A", "x1", "hi")
    assert (two["model"], two["body"], two["greeting"]) == ("model B", "x2", None)
    assert one["hostname"] == "model" and two["hostname"] == "my-container"
    # The model folder is mounted read-only: the container cannot change the shared copy.
    assert one["writable"] == "EROFS" and two["writable"] == "EROFS"
    assert not (harness.base / "models" / "a" / "probe").exists()
    assert first.last_lines() and any("starting in mode ok" in line for line in first.last_lines())


def test_without_model_data_the_model_folder_exists_empty_and_read_only(harness: Harness) -> None:
    instance = harness.instance("empty", None)
    instance.start()
    instance.wait_ready(timeout=30)

    answer = invoke(instance)

    assert answer["model_dir"] == [] and answer["model"].startswith("<")
    assert answer["writable"] == "EROFS"


def test_output_goes_to_the_log_stream(harness: Harness) -> None:
    instance = harness.instance("logged", harness.model("logged", "m"))
    instance.start()
    instance.wait_ready(timeout=30)
    invoke(instance)

    instance.stop(grace=10)
    harness.writers.pop().close()  # stop() has returned: the drain thread is done with it

    messages = harness.log_messages("logged")
    assert "serve: starting in mode ok" in messages
    assert any('"GET /ping HTTP/1.1" 200' in m for m in messages)
    assert any('"POST /invocations HTTP/1.1" 200' in m for m in messages)
    # stop() sent SIGTERM first, and the server had the time to say so.
    assert "serve: got SIGTERM, shutting down" in messages
    assert instance.exit_code() == 0


# -- failing to start --------------------------------------------------------------------------


def test_wait_ready_fails_with_exit_code_and_log_tail(harness: Harness) -> None:
    instance = harness.instance("exit3", harness.model("exit3", "m"), mode="exit3", variant="Blue")
    instance.start()

    with pytest.raises(InstanceFailed) as caught:
        instance.wait_ready(timeout=30)

    reason = caught.value.reason
    assert reason.startswith(
        "The primary container for production variant Blue did not pass the ping health check: "
        "the container exited with exit code 3"
    )
    assert "serve: loading the model failed: boom" in reason
    assert "serve: starting in mode exit3" in reason
    assert instance.exit_code() == 3 and not instance.alive()


def test_wait_ready_times_out_when_ping_never_answers_200(harness: Harness) -> None:
    instance = harness.instance("sick", harness.model("sick", "m"), mode="sick")
    instance.start()

    started = time.monotonic()
    with pytest.raises(InstanceFailed) as caught:
        instance.wait_ready(timeout=2)
    elapsed = time.monotonic() - started

    reason = caught.value.reason
    assert reason.startswith(
        "The primary container for production variant AllTraffic did not pass the ping health check "
        "within 2 seconds. Please check CloudWatch logs for this endpoint."
    )
    assert '"GET /ping HTTP/1.1" 503' in reason  # the tail shows what the server said
    assert 2 <= elapsed < 6
    assert instance.alive()  # a timeout does not stop it: the caller decides
    assert not isinstance(caught.value, StartCancelled)


def test_stop_while_waiting_cancels_the_wait(harness: Harness) -> None:
    instance = harness.instance("cancel", harness.model("cancel", "m"), mode="sick")
    instance.start()
    failures: list[InstanceFailed] = []

    def wait() -> None:
        try:
            instance.wait_ready(timeout=60)
        except InstanceFailed as exc:
            failures.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    instance.stop(grace=5)
    waiter.join(10)

    assert not waiter.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], StartCancelled)
    assert processes_with(harness.marker) == []


def test_a_set_stop_event_cancels_the_wait(harness: Harness) -> None:
    instance = harness.instance("event", harness.model("event", "m"), mode="sick")
    instance.start()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()

    with pytest.raises(StartCancelled):
        instance.wait_ready(timeout=60, stop=stop)
    assert instance.alive()  # the event cancels the wait only; stopping is the caller's


# -- stopping ----------------------------------------------------------------------------------


def test_stop_leaves_no_process_and_is_idempotent(harness: Harness) -> None:
    instance = harness.instance("stop", harness.model("stop", "m"))
    instance.start()
    instance.wait_ready(timeout=30)
    assert processes_with(harness.marker)  # the scan does see the running instance

    instance.stop(grace=10)

    assert processes_with(harness.marker) == []
    assert not instance.alive() and not instance.ping()
    instance.stop()  # again: nothing to do, returns at once
    assert instance.exit_code() == 0


def test_stop_kills_a_server_that_ignores_sigterm_after_the_grace(harness: Harness) -> None:
    instance = harness.instance("stubborn", harness.model("stubborn", "m"), mode="stubborn")
    instance.start()
    instance.wait_ready(timeout=30)

    started = time.monotonic()
    instance.stop(grace=1.0)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 10
    assert processes_with(harness.marker) == []
    assert instance.exit_code() == -signal.SIGKILL
    assert "serve: ignoring SIGTERM" in instance.last_lines()


def test_stop_before_start_and_start_after_stop(harness: Harness) -> None:
    instance = harness.instance("never", None)
    instance.stop()
    assert not instance.alive() and instance.exit_code() is None and not instance.ping()
    with pytest.raises(RuntimeError):
        instance.start()


def test_an_image_whose_files_are_gone_fails_to_start(harness: Harness) -> None:
    missing = LocalImage(name="gone", tag="latest", root=harness.base / "no-such-image", at="/opt/program")
    instance = harness.instance("gone", None)
    instance.image = missing

    with pytest.raises(InstanceFailed, match="could not be started"):
        instance.start()
    instance.stop()
    assert processes_with(harness.marker) == []
