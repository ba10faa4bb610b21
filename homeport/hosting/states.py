"""Endpoint statuses and the transitions the controller may make (exact AWS strings)."""

from __future__ import annotations

from enum import StrEnum


class EndpointStatus(StrEnum):
    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"


S = EndpointStatus

ALLOWED: dict[EndpointStatus, frozenset[EndpointStatus]] = {
    S.CREATING: frozenset({S.IN_SERVICE, S.FAILED, S.DELETING}),
    # an update that fails leaves the old configuration serving: back to InService with a reason
    S.UPDATING: frozenset({S.IN_SERVICE, S.DELETING}),
    # after a server restart, while the instances come back
    S.SYSTEM_UPDATING: frozenset({S.IN_SERVICE, S.FAILED, S.DELETING}),
    S.IN_SERVICE: frozenset({S.UPDATING, S.SYSTEM_UPDATING, S.DELETING}),
    S.FAILED: frozenset({S.DELETING, S.UPDATING}),
    S.DELETING: frozenset(),
    S.OUT_OF_SERVICE: frozenset({S.DELETING}),
    S.ROLLING_BACK: frozenset({S.IN_SERVICE, S.DELETING}),
    S.UPDATE_ROLLBACK_FAILED: frozenset({S.DELETING}),
}

# Operations refused while an endpoint is in one of these (SageMaker: "Cannot update in-progress endpoint").
IN_PROGRESS = frozenset({S.CREATING, S.UPDATING, S.SYSTEM_UPDATING, S.DELETING, S.ROLLING_BACK})


class IllegalEndpointTransition(Exception):
    pass


def check_transition(current: str, to: EndpointStatus) -> None:
    if to not in ALLOWED[EndpointStatus(current)]:
        raise IllegalEndpointTransition(f"{current} → {to} is not allowed")
