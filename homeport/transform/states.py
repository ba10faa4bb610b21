"""Transform-job statuses and the transitions the runner may make (exact AWS strings)."""

from __future__ import annotations

from enum import StrEnum


class TransformStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


T = TransformStatus

ALLOWED: dict[TransformStatus, frozenset[TransformStatus]] = {
    T.IN_PROGRESS: frozenset({T.COMPLETED, T.FAILED, T.STOPPING}),
    T.STOPPING: frozenset({T.STOPPED, T.FAILED}),
    T.COMPLETED: frozenset(),
    T.FAILED: frozenset(),
    T.STOPPED: frozenset(),
}
ACTIVE = (T.IN_PROGRESS.value, T.STOPPING.value)
TERMINAL = frozenset({T.COMPLETED.value, T.FAILED.value, T.STOPPED.value})


class IllegalTransformTransition(Exception):
    pass


def check_transition(current: str, to: TransformStatus) -> None:
    if to not in ALLOWED[TransformStatus(current)]:
        raise IllegalTransformTransition(f"{current} → {to} is not allowed")
