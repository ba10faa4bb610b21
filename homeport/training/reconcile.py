"""Restart reconciliation: no job stays falsely InProgress after the server died.

Run at start-up (with the data-dir lock held, so every lease written by an earlier server on
this data dir is known dead) and periodically for leases that expired. Finished work finishes
its upload; never-started work is queued again; lost work becomes Failed, saying why.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time

from homeport.store.database import Store
from homeport.store.records import TrainingJobRecord
from homeport.training.runner import Outcome, TrainingRunner, job_key
from homeport.training.scheduler import JobScheduler
from homeport.training.states import ACTIVE, Secondary, transition

log = logging.getLogger(__name__)

RESTART_REASON = (
    "InternalServerError: the Homeport server stopped while this job was in secondary status {status}; "
    "its processes were stopped with it. Run the job again."
)


def _dead(rec: TrainingJobRecord, me: str, dead_prefix: str, now: float) -> bool:
    if rec.lease_owner == me:
        return False
    if rec.lease_owner is None:
        return True
    return rec.lease_owner.startswith(dead_prefix) or (rec.lease_expires or 0.0) < now


def reconcile_training(
    store: Store, runner: TrainingRunner, scheduler: JobScheduler, me: str, dead_prefix: str, startup: bool
) -> list[str]:
    """Settle every active job whose runner is gone; returns the names it acted on."""
    acted: list[str] = []
    now = time.time()
    local = set(scheduler.running())
    for rec in store.training_jobs_in(ACTIVE):
        key = job_key(rec.name)
        if key in local or not _dead(rec, me, dead_prefix, now):
            continue
        if rec.lease_owner is None and not startup:
            continue  # queued in this server, not started yet
        secondary = Secondary(rec.secondary_status)
        acted.append(rec.name)
        if secondary in (Secondary.STARTING, Secondary.PENDING) or (
            secondary is Secondary.STOPPING and rec.lease_owner is None
        ):
            scheduler.submit(key)  # never started: run it (or finish its stop) now
        elif secondary is Secondary.UPLOADING or (
            secondary is Secondary.STOPPING and rec.exit_code is not None
        ):
            outcome = Outcome(exit_code=rec.exit_code, stopped=rec.stop_requested)
            if rec.exit_code not in (0, None) and not rec.stop_requested:
                outcome.failure = runner.failure_reason(runner.layout(rec.name), rec.exit_code, [])
            _background(runner, rec.name, outcome)
        elif secondary is Secondary.STOPPING:
            # The user asked for a stop and the restart did it: upload what was written, then Stopped.
            _background(runner, rec.name, Outcome(exit_code=None, stopped=True))
        else:
            reason = RESTART_REASON.format(status=secondary.value)

            def fail(r: TrainingJobRecord, reason: str = reason) -> None:
                r.failure_reason = reason
                transition(r, Secondary.FAILED)
                r.lease_owner = r.lease_expires = None
                if r.training_start_time is not None and r.training_end_time is None:
                    r.training_end_time = time.time()

            store.update_training_job(rec.name, fail)
            runner.logs.close_stream("TrainingJobs", f"{rec.name}/algo-1")
            shutil.rmtree(runner.layout(rec.name).root, ignore_errors=True)
    if acted:
        log.info("reconciled training jobs after restart: %s", ", ".join(acted))
    return acted


def _background(runner: TrainingRunner, name: str, outcome: Outcome) -> None:
    threading.Thread(
        target=runner.upload_and_finish, args=(name, outcome), name=f"finish-{name}", daemon=True
    ).start()
