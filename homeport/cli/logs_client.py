"""Reading job and endpoint logs through the server's CloudWatch Logs API.

Groups and streams are SageMaker's: ``/aws/sagemaker/TrainingJobs`` (``<job>/algo-1-<epoch>``),
``/aws/sagemaker/TransformJobs`` (``<job>/<instance>``) and ``/aws/sagemaker/Endpoints/<name>``
(``<variant>/<instance>``). A :class:`LogTail` remembers each stream's forward token, so every
``poll()`` returns only what was written since the previous one.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError

from homeport.cli.client import Clients, EndpointUrl, JsonFlag
from homeport.cli.exit_codes import ExitCode, fail, handled, usage
from homeport.cli.output import print_json_line

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_GROUP = "/aws/sagemaker/TransformJobs"
ENDPOINT_GROUP = "/aws/sagemaker/Endpoints/"
TERMINAL = {"Completed", "Failed", "Stopped"}


@dataclass(frozen=True)
class Event:
    stream: str
    timestamp: int  # ms since the epoch
    message: str


@dataclass
class LogTail:
    logs: Any  # boto3 "logs" client
    group: str
    prefix: str | None = None
    _tokens: dict[str, str | None] = field(default_factory=dict)

    def streams(self) -> list[str]:
        params: dict[str, Any] = {"logGroupName": self.group}
        if self.prefix:
            params["logStreamNamePrefix"] = self.prefix
        names: list[str] = []
        try:
            for page in self.logs.get_paginator("describe_log_streams").paginate(**params):
                names.extend(s["logStreamName"] for s in page.get("logStreams", []))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []  # the group shows once something was logged
            raise
        return sorted(names)

    def poll(self) -> list[Event]:
        """Events written since the last poll, stream by stream."""
        events: list[Event] = []
        for stream in self.streams():
            token = self._tokens.get(stream)
            while True:
                params: dict[str, Any] = {
                    "logGroupName": self.group,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if token:
                    params["nextToken"] = token
                page = self.logs.get_log_events(**params)
                events.extend(Event(stream, int(e["timestamp"]), str(e["message"])) for e in page["events"])
                forward = page.get("nextForwardToken")
                if not forward or forward == token:
                    break
                token = forward
            self._tokens[stream] = token
        return events

    @property
    def seen_streams(self) -> int:
        return len(self._tokens)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


def writer(json_out: bool, label: Callable[[str], str | None]) -> Callable[[Event], None]:
    """Prints one event: ``[label] message`` (no label: the bare message), or a JSON line."""

    def write(event: Event) -> None:
        if json_out:
            print_json_line(
                {"logStreamName": event.stream, "timestamp": iso(event.timestamp), "message": event.message}
            )
            return
        tag = label(event.stream)
        sys.stdout.write(f"[{tag}] {event.message}\n" if tag else event.message + "\n")
        sys.stdout.flush()

    return write


def _client_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def follow(
    tail: LogTail,
    write: Callable[[Event], None],
    is_over: Callable[[], bool],
    follow: bool,
    poll_seconds: float = 0.5,
) -> None:
    """Print what is there; with ``follow``, keep printing until ``is_over()``, then drain once."""
    while True:
        over = is_over() if follow else True
        for event in tail.poll():
            write(event)
        if over:
            return
        time.sleep(poll_seconds)


def training_logs(clients: Any, job: str, follow_: bool, json_out: bool) -> None:
    sm = clients.sagemaker

    def status() -> str:
        return str(sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"])

    status()  # not found → ValidationException "Requested resource not found." (exit 4)
    tail = LogTail(clients.logs, TRAINING_GROUP, f"{job}/")
    follow(tail, writer(json_out, lambda _s: None), lambda: status() in TERMINAL, follow_)
    if not tail.seen_streams and not follow_:
        fail("NoLogs", f"no logs for training job {job} yet (has it started?)", ExitCode.NOT_FOUND)


def transform_logs(clients: Any, job: str, follow_: bool, json_out: bool) -> None:
    sm = clients.sagemaker

    def status() -> str:
        return str(sm.describe_transform_job(TransformJobName=job)["TransformJobStatus"])

    status()
    tail = LogTail(clients.logs, TRANSFORM_GROUP, f"{job}/")
    follow(tail, writer(json_out, lambda s: s.partition("/")[2]), lambda: status() in TERMINAL, follow_)
    if not tail.seen_streams and not follow_:
        fail("NoLogs", f"no logs for transform job {job} yet (has it started?)", ExitCode.NOT_FOUND)


def endpoint_logs(clients: Any, endpoint: str, follow_: bool, json_out: bool) -> None:
    sm = clients.sagemaker

    def gone() -> bool:
        try:
            sm.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if _client_code(exc) in ("ValidationException", "ResourceNotFound"):
                return True
            raise
        return False

    if gone():
        fail("ValidationException", f'Could not find endpoint "{endpoint}".', ExitCode.NOT_FOUND)
    tail = LogTail(clients.logs, ENDPOINT_GROUP + endpoint)
    follow(tail, writer(json_out, lambda s: s), gone, follow_)


def logs(
    job: Annotated[str | None, typer.Argument(help="Training job name.")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="An endpoint's instance logs.")] = None,
    transform: Annotated[
        str | None, typer.Option("--transform", help="A transform job's instance logs.")
    ] = None,
    follow_: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing until the job ends / the endpoint is deleted."),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Read the log files of this data dir directly (no server needed; jobs and endpoints).",
            show_default=False,
        ),
    ] = None,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Print (and follow) a training job's log, or an endpoint's / transform job's instance logs.

    Read through the server's CloudWatch Logs API; with --data-dir, from the files directly.
    """
    given = [x for x in (job, endpoint, transform) if x is not None]
    with handled():
        if len(given) != 1:
            raise usage("give a training job name, --endpoint NAME or --transform NAME")
        if data_dir is not None:
            _local_logs(data_dir, job, endpoint, transform, follow_)
            return
        clients = Clients.for_url(endpoint_url)
        if job is not None:
            training_logs(clients, job, follow_, json_out)
        elif endpoint is not None:
            endpoint_logs(clients, endpoint, follow_, json_out)
        else:
            transform_logs(clients, str(transform), follow_, json_out)


def _local_logs(
    data_dir: Path, job: str | None, endpoint: str | None, transform: str | None, follow_: bool
) -> None:
    from homeport.config import Settings
    from homeport.logs.follow import print_endpoint_logs, print_job_logs

    if transform is not None:
        raise usage("--transform reads through the server: drop --data-dir")
    settings = Settings(data_dir=data_dir.expanduser())
    found = (
        print_job_logs(settings.logs_dir, job, follow_)
        if job is not None
        else print_endpoint_logs(settings.logs_dir, str(endpoint), follow_)
    )
    if not found:
        fail("NoLogs", f"no logs for {job or endpoint} in {data_dir} (has it started?)", ExitCode.NOT_FOUND)
