"""Printing log streams for the CLI: one job stream, or every instance stream of an endpoint."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from homeport.logs.streams import LogStore

TRAINING_GROUP = "TrainingJobs"
ENDPOINT_GROUP = "Endpoints"


def print_job_logs(logs_dir: Path, job: str, follow: bool) -> bool:
    store = LogStore(logs_dir)
    stream = f"{job}/algo-1"
    if not follow and not store.exists(TRAINING_GROUP, stream):
        return False
    for event in store.read(TRAINING_GROUP, stream, follow=follow):
        sys.stdout.write(event.message + "\n")
        sys.stdout.flush()
    return True


def print_endpoint_logs(logs_dir: Path, endpoint: str, follow: bool, poll: float = 0.3) -> bool:
    """Every instance stream, prefixed with its name; with ``follow``, until the endpoint is deleted."""
    store = LogStore(logs_dir)
    offsets: dict[str, int] = {}
    seen_any = False
    while True:
        for stream in store.streams(ENDPOINT_GROUP, endpoint):
            seen_any = True
            events, offsets[stream] = store.read_from(ENDPOINT_GROUP, stream, offsets.get(stream, 0))
            instance = stream.split("/", 1)[1]
            for event in events:
                sys.stdout.write(f"[{instance}] {event.message}\n")
        sys.stdout.flush()
        if not follow or store.is_closed(ENDPOINT_GROUP, endpoint):
            return seen_any or follow
        time.sleep(poll)
