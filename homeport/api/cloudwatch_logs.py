"""CloudWatch Logs on the same URL, over Homeport's log streams (read-only).

Clients that set ``AWS_ENDPOINT_URL`` send CloudWatch Logs calls here too: the SageMaker SDK
tails a job's logs with ``DescribeLogStreams`` + ``GetLogEvents`` and ``aws logs tail`` uses
``FilterLogEvents``. The API speaks JSON 1.1 (``POST /``, ``X-Amz-Target:
Logs_20140328.<Operation>``); requests are told apart by their SigV4 scope (service ``logs``).

Homeport's streams are shown under SageMaker's CloudWatch names:

- ``TrainingJobs`` ``<job>/algo-1`` -> ``/aws/sagemaker/TrainingJobs`` ``<job>/algo-1-<epoch s of
  the first event>`` (a training stream shows once it holds an event, as on SageMaker);
- ``Endpoints`` ``<endpoint>/<variant>/<instance>`` -> ``/aws/sagemaker/Endpoints/<endpoint>``
  ``<variant>/<instance>``;
- ``TransformJobs`` ``transform-<job>/<variant>/<instance>`` -> ``/aws/sagemaker/TransformJobs``
  ``<job>/<instance>``.

``GetLogEvents`` tokens are byte offsets into the stream's file (``f/<offset>``,
``b/<offset>``); with nothing newer, the forward token comes back unchanged, which is how
clients know to stop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.api.runtime_api import ASGIApp, Receive, Scope, Send
from homeport.logs.streams import LogStore

TARGET_PREFIX = "Logs_20140328."
MAX_BODY = 1024 * 1024
PREFIX = "/aws/sagemaker/"
TRAINING_GROUP = PREFIX + "TrainingJobs"
TRANSFORM_GROUP = PREFIX + "TransformJobs"
ENDPOINT_GROUP_PREFIX = PREFIX + "Endpoints/"
TRAINING_HOST = "algo-1"
TRANSFORM_PREFIX = "transform-"
TRANSFORM_VARIANT = "AllTraffic"
_CHUNK = 1 << 20
_TAIL = 64 * 1024
DEFAULT_ACCOUNT = "123456789012"


class LogsError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _not_found(what: str) -> LogsError:
    return LogsError("ResourceNotFoundException", f"The specified {what} does not exist.")


def _invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


@dataclass(frozen=True)
class Line:
    start: int  # byte offset where the line starts
    end: int  # byte offset after its newline
    timestamp: int
    message: str


@dataclass(frozen=True)
class Stream:
    name: str  # CloudWatch name
    hp_group: str
    hp_stream: str
    path: Path


def _iter_lines(path: Path, offset: int = 0, stop: int | None = None) -> Iterator[Line]:
    """Complete events of a stream file from byte ``offset`` (up to ``stop``)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(offset)
        pending = b""
        pos = offset
        while stop is None or pos < stop:
            data = fh.read(_CHUNK)
            if not data:
                return
            data = pending + data
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            for raw in data[:cut].splitlines(keepends=True):
                start, pos = pos, pos + len(raw)
                if stop is not None and pos > stop:
                    return
                try:
                    doc = json.loads(raw)
                    line = Line(start, pos, int(doc["t"]), str(doc["m"]))
                except (ValueError, KeyError, TypeError):
                    continue
                yield line


def _first_event(path: Path) -> int | None:
    for line in _iter_lines(path):
        return line.timestamp
    return None


def _last_event(path: Path) -> int | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    start = max(0, size - _TAIL)
    last = None
    if start:
        # Begin at a line boundary inside the tail.
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read(_TAIL)
        nl = data.find(b"\n")
        start = start + nl + 1 if nl >= 0 else 0
    for line in _iter_lines(path, start):
        last = line.timestamp
    return last


class LogsView:
    """Homeport's LogStore seen as CloudWatch log groups and streams."""

    def __init__(self, logs: LogStore, account: str) -> None:
        self.logs = logs
        self.account = account

    # -- groups --------------------------------------------------------------------------

    def _files(self, *parts: str) -> list[Path]:
        root = self.logs.root.joinpath(*parts)
        if not root.is_dir():
            return []
        return sorted(root.rglob("*.jsonl"))

    def group_names(self) -> list[str]:
        names = []
        if self.streams(TRAINING_GROUP):
            names.append(TRAINING_GROUP)
        if self._files("TransformJobs"):
            names.append(TRANSFORM_GROUP)
        endpoints = self.logs.root / "Endpoints"
        if endpoints.is_dir():
            for d in sorted(endpoints.iterdir()):
                if d.is_dir() and any(d.rglob("*.jsonl")):
                    names.append(ENDPOINT_GROUP_PREFIX + d.name)
        return sorted(names)

    def _group_dir(self, group: str) -> Path:
        if group == TRAINING_GROUP:
            return self.logs.root / "TrainingJobs"
        if group == TRANSFORM_GROUP:
            return self.logs.root / "TransformJobs"
        return self.logs.root / "Endpoints" / group[len(ENDPOINT_GROUP_PREFIX) :]

    def group_info(self, group: str, region: str) -> dict[str, Any]:
        streams = self.streams(group)
        created = min((_ms_mtime(s.path) for s in streams), default=0)
        return {
            "logGroupName": group,
            "creationTime": created,
            "arn": f"arn:aws:logs:{region}:{self.account}:log-group:{group}:*",
            "storedBytes": sum(_size(s.path) for s in streams),
            "metricFilterCount": 0,
        }

    # -- streams -------------------------------------------------------------------------

    def streams(self, group: str) -> list[Stream]:
        """The group's streams sorted by name; [] for a group that does not exist."""
        out: list[Stream] = []
        if group == TRAINING_GROUP:
            root = self.logs.root / "TrainingJobs"
            for path in self._files("TrainingJobs"):
                rel = path.relative_to(root).as_posix()[: -len(".jsonl")]
                job, _, host = rel.rpartition("/")
                if not job or "/" in job or host != TRAINING_HOST:
                    continue
                first = _first_event(path)
                if first is None:
                    continue  # shows once it holds an event
                out.append(Stream(f"{job}/{host}-{first // 1000}", "TrainingJobs", rel, path))
        elif group == TRANSFORM_GROUP:
            root = self.logs.root / "TransformJobs"
            for path in self._files("TransformJobs"):
                parts = path.relative_to(root).as_posix()[: -len(".jsonl")].split("/")
                if len(parts) != 3 or not parts[0].startswith(TRANSFORM_PREFIX):
                    continue
                job = parts[0][len(TRANSFORM_PREFIX) :]
                out.append(Stream(f"{job}/{parts[2]}", "TransformJobs", "/".join(parts), path))
        elif group.startswith(ENDPOINT_GROUP_PREFIX):
            endpoint = group[len(ENDPOINT_GROUP_PREFIX) :]
            if not endpoint or "/" in endpoint or endpoint in {".", ".."}:
                return []
            root = self.logs.root / "Endpoints" / endpoint
            for path in self._files("Endpoints", endpoint):
                rel = path.relative_to(root).as_posix()[: -len(".jsonl")]
                if rel.count("/") != 1:
                    continue
                out.append(Stream(rel, "Endpoints", f"{endpoint}/{rel}", path))
        return sorted(out, key=lambda s: s.name)

    def stream(self, group: str, name: str) -> Stream:
        """One stream by its CloudWatch name (raises ResourceNotFoundException)."""
        if group not in (TRAINING_GROUP, TRANSFORM_GROUP) and not group.startswith(ENDPOINT_GROUP_PREFIX):
            raise _not_found("log group")
        try:
            if group == TRAINING_GROUP:
                job, _, rest = name.partition("/")
                m = re.fullmatch(rf"{TRAINING_HOST}-(\d+)", rest)
                if not job or m is None:
                    raise _not_found("log stream")
                hp_stream = f"{job}/{TRAINING_HOST}"
                path = self.logs.path("TrainingJobs", hp_stream)
                first = _first_event(path)
                if first is None or first // 1000 != int(m.group(1)):
                    raise _not_found("log stream")
                return Stream(name, "TrainingJobs", hp_stream, path)
            if group == TRANSFORM_GROUP:
                job, _, instance = name.partition("/")
                hp_stream = f"{TRANSFORM_PREFIX}{job}/{TRANSFORM_VARIANT}/{instance}"
                path = self.logs.path("TransformJobs", hp_stream)
                if job and instance and "/" not in instance and path.exists():
                    return Stream(name, "TransformJobs", hp_stream, path)
                # Another variant name: look it up among the group's streams.
                for s in self.streams(group):
                    if s.name == name:
                        return s
                raise _not_found("log stream")
            endpoint = group[len(ENDPOINT_GROUP_PREFIX) :]
            if name.count("/") != 1:
                raise _not_found("log stream")
            hp_stream = f"{endpoint}/{name}"
            path = self.logs.path("Endpoints", hp_stream)
            if not path.exists():
                raise _not_found("log stream")
            return Stream(name, "Endpoints", hp_stream, path)
        except ValueError as exc:  # an unsafe name component
            raise _not_found("log stream") from exc

    def stream_info(self, group: str, stream: Stream, region: str) -> dict[str, Any]:
        info: dict[str, Any] = {
            "logStreamName": stream.name,
            "creationTime": _ms_mtime(stream.path),
            "arn": f"arn:aws:logs:{region}:{self.account}:log-group:{group}:log-stream:{stream.name}",
            "storedBytes": _size(stream.path),
        }
        first = _first_event(stream.path)
        if first is not None:
            last = _last_event(stream.path) or first
            info["creationTime"] = min(first, info["creationTime"])
            info.update(
                firstEventTimestamp=first,
                lastEventTimestamp=last,
                lastIngestionTime=last,
                uploadSequenceToken="0",
            )
        return info

    def require_group(self, group: str) -> list[Stream]:
        streams = self.streams(group)
        if not streams and not (group.startswith(ENDPOINT_GROUP_PREFIX) and self._group_dir(group).is_dir()):
            raise _not_found("log group")
        return streams


def _ms_mtime(path: Path) -> int:
    try:
        return int(path.stat().st_mtime * 1000)
    except FileNotFoundError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -- request helpers -----------------------------------------------------------------------


def _str(req: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = req.get(key)
    if value is None:
        if required:
            raise _invalid(f"1 validation error detected: Value null at '{key}' failed to satisfy constraint")
        return None
    if not isinstance(value, str):
        raise _invalid(f"{key} must be a string")
    return value


def _int(
    req: dict[str, Any], key: str, default: int | None = None, lo: int | None = None, hi: int | None = None
) -> int | None:
    value = req.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{key} must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _invalid(f"1 validation error detected: Value '{value}' at '{key}' is out of range")
    return value


def _bool(req: dict[str, Any], key: str, default: bool) -> bool:
    value = req.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"{key} must be a boolean")
    return value


def _encode_token(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def _decode_token(token: str) -> dict[str, Any]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error) as exc:
        raise _invalid("The specified nextToken is invalid.") from exc
    if not isinstance(doc, dict):
        raise _invalid("The specified nextToken is invalid.")
    return doc


def _in_time(ts: int, start: int | None, end: int | None) -> bool:
    return (start is None or ts >= start) and (end is None or ts <= end)


# -- filter patterns -----------------------------------------------------------------------

_TERM = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """Plain terms (all must occur), ``"quoted phrases"``, ``?any`` terms and ``-excluded`` terms."""
    pattern = pattern.strip()
    if pattern.startswith(("{", "[")):
        raise _invalid("Only plain-text filter patterns are supported by Homeport.")
    required: list[str] = []
    anyof: list[str] = []
    excluded: list[str] = []
    for m in _TERM.finditer(pattern):
        quoted, bare = m.group(1), m.group(2)
        if quoted is not None:
            required.append(quoted.replace('\\"', '"'))
            continue
        if bare.startswith("?") and len(bare) > 1:
            anyof.append(bare[1:].strip('"'))
        elif bare.startswith("-") and len(bare) > 1:
            excluded.append(bare[1:].strip('"'))
        else:
            required.append(bare)

    def matches(message: str) -> bool:
        return (
            all(t in message for t in required)
            and (not anyof or any(t in message for t in anyof))
            and not any(t in message for t in excluded)
        )

    return matches


# -- operations ----------------------------------------------------------------------------


class Operations:
    def __init__(self, view: LogsView, region: str) -> None:
        self.view = view
        self.region = region

    def DescribeLogGroups(self, req: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        prefix = _str(req, "logGroupNamePrefix") or ""
        pattern = _str(req, "logGroupNamePattern") or ""
        limit = _int(req, "limit", 50, 1, 50) or 50
        token = _str(req, "nextToken")
        names = [n for n in self.view.group_names() if n.startswith(prefix) and pattern in n]
        if token:
            after = _decode_token(token).get("after")
            names = [n for n in names if isinstance(after, str) and n > after]
        page = names[:limit]
        out: dict[str, Any] = {"logGroups": [self.view.group_info(n, self.region) for n in page]}
        if len(names) > limit:
            out["nextToken"] = _encode_token({"after": page[-1]})
        return out

    def DescribeLogStreams(self, req: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        group = _group_name(req)
        prefix = _str(req, "logStreamNamePrefix") or ""
        order = _str(req, "orderBy") or "LogStreamName"
        if order not in ("LogStreamName", "LastEventTime"):
            raise _invalid("orderBy must be LogStreamName or LastEventTime")
        if order == "LastEventTime" and prefix:
            raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        descending = _bool(req, "descending", False)
        limit = _int(req, "limit", 50, 1, 50) or 50
        token = _str(req, "nextToken")
        streams = [s for s in self.view.require_group(group) if s.name.startswith(prefix)]
        infos = [self.view.stream_info(group, s, self.region) for s in streams]
        if order == "LastEventTime":
            infos.sort(key=lambda i: (i.get("lastEventTimestamp", 0), i["logStreamName"]), reverse=descending)
        else:
            infos.sort(key=lambda i: i["logStreamName"], reverse=descending)
        start = 0
        if token:
            index = _decode_token(token).get("i")
            if not isinstance(index, int) or index < 0:
                raise _invalid("The specified nextToken is invalid.")
            start = index
        page = infos[start : start + limit]
        out: dict[str, Any] = {"logStreams": page}
        if start + limit < len(infos):
            out["nextToken"] = _encode_token({"i": start + limit})
        return out

    def GetLogEvents(self, req: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        group = _group_name(req)
        name = _str(req, "logStreamName", required=True) or ""
        start_time = _int(req, "startTime", None, 0)
        end_time = _int(req, "endTime", None, 0)
        limit = _int(req, "limit", 10_000, 1, 10_000) or 10_000
        from_head = _bool(req, "startFromHead", False)
        token = _str(req, "nextToken")
        stream = self.view.stream(group, name)
        if not stream.path.exists():
            raise _not_found("log stream")
        direction, offset = ("f", 0) if from_head else ("b", None)
        if token:
            m = re.fullmatch(r"([fb])/(\d{1,20})", token)
            if m is None:
                raise _invalid("The specified nextToken is invalid.")
            direction, offset = m.group(1), int(m.group(2))
        size = _size(stream.path)
        if direction == "f":
            assert offset is not None
            lines: list[Line] = []
            pos = offset
            for line in _iter_lines(stream.path, offset):
                if len(lines) >= limit:
                    break
                pos = line.end
                if _in_time(line.timestamp, start_time, end_time):
                    lines.append(line)
            back = lines[0].start if lines else offset
            forward = pos
        else:
            stop = size if offset is None else offset
            window: deque[Line] = deque(maxlen=limit)
            for line in _iter_lines(stream.path, 0, stop):
                if _in_time(line.timestamp, start_time, end_time):
                    window.append(line)
            lines = list(window)
            back = lines[0].start if lines else stop
            forward = lines[-1].end if lines else stop
        return {
            "events": [
                {"timestamp": ln.timestamp, "message": ln.message, "ingestionTime": ln.timestamp}
                for ln in lines
            ],
            "nextForwardToken": f"f/{forward:020d}",
            "nextBackwardToken": f"b/{back:020d}",
        }

    def FilterLogEvents(self, req: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        group = _group_name(req)
        names = req.get("logStreamNames")
        prefix = _str(req, "logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise _invalid("Cannot specify both logStreamNames and logStreamNamePrefix.")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise _invalid("logStreamNames must be a list of strings")
        start_time = _int(req, "startTime", None, 0)
        end_time = _int(req, "endTime", None, 0)
        limit = _int(req, "limit", 10_000, 1, 10_000) or 10_000
        matches = compile_pattern(_str(req, "filterPattern") or "")
        token = _str(req, "nextToken")
        streams = self.view.require_group(group)
        if names is not None:
            wanted = set(names)
            streams = [s for s in streams if s.name in wanted]
        elif prefix:
            streams = [s for s in streams if s.name.startswith(prefix)]
        after: tuple[int, str, int] | None = None
        if token:
            doc = _decode_token(token)
            key = doc.get("after")
            if not (isinstance(key, list) and len(key) == 3):
                raise _invalid("The specified nextToken is invalid.")
            after = (int(key[0]), str(key[1]), int(key[2]))
        found: list[tuple[int, str, int, str]] = []
        for s in streams:
            for line in _iter_lines(s.path):
                if not _in_time(line.timestamp, start_time, end_time):
                    continue
                if after is not None and (line.timestamp, s.name, line.start) <= after:
                    continue
                if matches(line.message):
                    found.append((line.timestamp, s.name, line.start, line.message))
        found.sort(key=lambda e: (e[0], e[1], e[2]))
        page = found[:limit]
        out: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": name,
                    "timestamp": ts,
                    "message": message,
                    "ingestionTime": ts,
                    "eventId": _event_id(name, ts, start),
                }
                for ts, name, start, message in page
            ],
            "searchedLogStreams": [{"logStreamName": s.name, "searchedCompletely": True} for s in streams],
        }
        if len(found) > limit:
            last = page[-1]
            out["nextToken"] = _encode_token({"after": [last[0], last[1], last[2]]})
        return out


def _group_name(req: dict[str, Any]) -> str:
    group = _str(req, "logGroupName")
    if group is None:
        identifier = _str(req, "logGroupIdentifier")
        if identifier is None:
            raise _invalid("logGroupName is required")
        # An ARN: arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]
        if identifier.startswith("arn:"):
            identifier = identifier.split(":log-group:", 1)[-1].removesuffix(":*")
        group = identifier
    return group


def _event_id(stream: str, ts: int, offset: int) -> str:
    digest = int(hashlib.sha1(stream.encode()).hexdigest()[:12], 16)
    return f"{ts:020d}{digest:015d}{offset:020d}"


OPERATIONS = ("DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents")


def handle(view: LogsView, region: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """(status, JSON document) for one request."""
    operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
    if operation not in OPERATIONS:
        return 400, {"__type": "UnknownOperationException", "message": f"Unknown operation {target}"}
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        return 400, {"__type": "SerializationException", "message": "The request body is not valid JSON."}
    if not isinstance(req, dict):
        return 400, {"__type": "SerializationException", "message": "The request body must be an object."}
    try:
        result: dict[str, Any] = getattr(Operations(view, region), operation)(req)
    except LogsError as exc:
        return 400, {"__type": exc.code, "message": exc.message}
    return 200, result


def _region(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            m = re.search(rb"Credential=[^/,]+/\d{8}/([^/,]+)/logs/aws4_request", value)
            if m:
                return m.group(1).decode("latin-1")
    return "us-east-1"


async def _read_body(receive: Receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


def build_logs_app(logs: LogStore, account: str = DEFAULT_ACCOUNT) -> ASGIApp:
    view = LogsView(logs, account)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive) if scope.get("method") == "POST" else b""
        target = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-amz-target":
                target = value.decode("latin-1")
        if body is None:
            status, doc = 413, {"__type": "InvalidParameterException", "message": "The request is too large."}
        elif scope.get("method") != "POST":
            status, doc = 400, {"__type": "UnknownOperationException", "message": "Use POST."}
        else:
            status, doc = await asyncio.to_thread(handle, view, _region(scope), target, body)
        payload = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/x-amz-json-1.1"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app
