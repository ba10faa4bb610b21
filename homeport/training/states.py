"""The training-job state machine: statuses, secondary statuses and the one function that moves them.

Status strings are the exact AWS enum values. Every change of status goes through
:func:`transition`, which checks the transition table, closes the previous
SecondaryStatusTransition, opens the next one and stamps LastModifiedTime, so a caller that
applies it inside one store transaction changes status, timestamps and history together.
"""

from __future__ import annotations

import time
from enum import StrEnum

from homeport.store.records import TrainingJobRecord


class JobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class Secondary(StrEnum):
    STARTING = "Starting"
    PENDING = "Pending"
    DOWNLOADING = "Downloading"
    TRAINING = "Training"
    UPLOADING = "Uploading"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
    COMPLETED = "Completed"
    FAILED = "Failed"


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})
ACTIVE = (JobStatus.IN_PROGRESS.value, JobStatus.STOPPING.value)

# secondary status → the primary status it implies
PRIMARY_OF: dict[Secondary, JobStatus] = {
    Secondary.STARTING: JobStatus.IN_PROGRESS,
    Secondary.PENDING: JobStatus.IN_PROGRESS,
    Secondary.DOWNLOADING: JobStatus.IN_PROGRESS,
    Secondary.TRAINING: JobStatus.IN_PROGRESS,
    Secondary.UPLOADING: JobStatus.IN_PROGRESS,
    Secondary.STOPPING: JobStatus.STOPPING,
    Secondary.STOPPED: JobStatus.STOPPED,
    Secondary.MAX_RUNTIME_EXCEEDED: JobStatus.STOPPED,
    Secondary.COMPLETED: JobStatus.COMPLETED,
    Secondary.FAILED: JobStatus.FAILED,
}

_ENDINGS = {Secondary.STOPPED, Secondary.MAX_RUNTIME_EXCEEDED, Secondary.COMPLETED, Secondary.FAILED}

# Allowed secondary-status moves. A job that is stopping still uploads what it wrote, so
# Stopping may be followed by Uploading (the primary status stays Stopping meanwhile).
ALLOWED: dict[Secondary, frozenset[Secondary]] = {
    Secondary.STARTING: frozenset(
        {Secondary.PENDING, Secondary.DOWNLOADING, Secondary.STOPPING, Secondary.FAILED, Secondary.STOPPED}
    ),
    Secondary.PENDING: frozenset(
        {Secondary.DOWNLOADING, Secondary.STOPPING, Secondary.FAILED, Secondary.STOPPED}
    ),
    Secondary.DOWNLOADING: frozenset({Secondary.TRAINING, Secondary.STOPPING, Secondary.FAILED}),
    Secondary.TRAINING: frozenset(
        {Secondary.UPLOADING, Secondary.STOPPING, Secondary.FAILED, Secondary.MAX_RUNTIME_EXCEEDED}
    ),
    Secondary.UPLOADING: frozenset(
        {Secondary.COMPLETED, Secondary.FAILED, Secondary.STOPPED, Secondary.MAX_RUNTIME_EXCEEDED}
    ),
    Secondary.STOPPING: frozenset({Secondary.UPLOADING, Secondary.STOPPED, Secondary.FAILED}),
    Secondary.STOPPED: frozenset(),
    Secondary.MAX_RUNTIME_EXCEEDED: frozenset(),
    Secondary.COMPLETED: frozenset(),
    Secondary.FAILED: frozenset(),
}

MESSAGES: dict[Secondary, str] = {
    Secondary.STARTING: "Preparing the instances for training",
    Secondary.PENDING: "Waiting for capacity: the server's concurrent-job limit is reached",
    Secondary.DOWNLOADING: "Downloading input data",
    Secondary.TRAINING: "Training image download completed. Training in progress.",
    Secondary.UPLOADING: "Uploading generated training model",
    Secondary.STOPPING: "Stopping the training job",
    Secondary.STOPPED: "The training job was stopped.",
    Secondary.MAX_RUNTIME_EXCEEDED: "Training job stopped because it exceeded the MaxRuntimeInSeconds limit",
    Secondary.COMPLETED: "Training job completed",
    Secondary.FAILED: "Training job failed",
}


class IllegalTransition(Exception):
    """A programming error: the runner asked for a move the table does not allow."""


def new_transitions(now: float) -> list[dict[str, object]]:
    return [
        {"Status": Secondary.STARTING.value, "StartTime": now, "StatusMessage": MESSAGES[Secondary.STARTING]}
    ]


def transition(
    rec: TrainingJobRecord,
    to: Secondary,
    *,
    message: str | None = None,
    primary: JobStatus | None = None,
    now: float | None = None,
) -> None:
    """Move ``rec`` to secondary status ``to`` (and its primary status), recording history."""
    current = Secondary(rec.secondary_status)
    if to not in ALLOWED[current]:
        raise IllegalTransition(f"{rec.name}: {current} → {to} is not allowed")
    now = time.time() if now is None else now
    if rec.transitions and "EndTime" not in rec.transitions[-1]:
        rec.transitions[-1]["EndTime"] = now
    entry: dict[str, object] = {
        "Status": to.value,
        "StartTime": now,
        "StatusMessage": message or MESSAGES[to],
    }
    if to in _ENDINGS:
        entry["EndTime"] = now
    rec.transitions.append(entry)
    rec.secondary_status = to.value
    if primary is not None:
        rec.status = primary.value
    elif not (to is Secondary.UPLOADING and rec.status == JobStatus.STOPPING):
        rec.status = PRIMARY_OF[to].value
    rec.last_modified_time = now


def is_terminal(status: str) -> bool:
    return status in {s.value for s in TERMINAL}
