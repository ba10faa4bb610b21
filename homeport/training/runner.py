"""Runs one training job end to end: stage, train, upload, finish — and finishes interrupted uploads.

Concurrency: :meth:`TrainingRunner.run` executes on one scheduler worker thread for the whole
job (the runtime requires the supervising thread to outlive the process tree it starts); a
second thread drains the job's output into its log stream and the metric collector. Every
status change is one store transaction through :func:`homeport.training.states.transition`.
"""

from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from homeport.artifacts.tarball import pack_dir
from homeport.config import Settings
from homeport.errors import HomeportError
from homeport.images.source import ImageSource
from homeport.logs.streams import LogStore, LogWriter, cloudwatch_text
from homeport.runtimes.base import Mount, RunHandle, RunSpec, Runtime
from homeport.runtimes.instance_types import resources_for
from homeport.storage.base import ObjectStore, S3Uri
from homeport.storage.endpoint_env import object_store_environment
from homeport.store.database import Store
from homeport.store.records import TrainingJobRecord
from homeport.training import contract
from homeport.training.metrics import MetricCollector
from homeport.training.staging import StagingError, stage_channel
from homeport.training.states import JobStatus, Secondary, is_terminal, transition

log = logging.getLogger(__name__)

LOG_GROUP = "TrainingJobs"
FAILURE_REASON_LIMIT = 1024
TAIL_LINES = 20


def log_stream(job_name: str) -> str:
    return f"{job_name}/{contract.HOST}"


def job_key(name: str) -> str:
    return name.lower()


@dataclass
class Outcome:
    exit_code: int | None
    stopped: bool = False
    max_runtime: bool = False
    failure: str | None = None


class JobFailed(Exception):
    """Ends a job as Failed with this message as its FailureReason."""


def _truncate(text: str) -> str:
    return text if len(text) <= FAILURE_REASON_LIMIT else text[: FAILURE_REASON_LIMIT - 3] + "..."


class TrainingRunner:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        objects: ObjectStore,
        images: ImageSource,
        runtime: Runtime,
        logs: LogStore,
        owner: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.objects = objects
        self.images = images
        self.runtime = runtime
        self.logs = logs
        self.owner = owner

    # -- helpers -------------------------------------------------------------------------

    def layout(self, name: str) -> contract.JobLayout:
        return contract.JobLayout(self.settings.jobs_dir / job_key(name))

    def _update(self, name: str, mutate: Callable[[TrainingJobRecord], None]) -> TrainingJobRecord:
        return self.store.update_training_job(name, mutate)

    def _lease(self) -> float:
        return time.time() + 3 * self.settings.heartbeat_seconds

    def _heartbeat(self, name: str) -> None:
        def renew(rec: TrainingJobRecord) -> None:
            rec.lease_owner = self.owner
            rec.lease_expires = self._lease()

        self._update(name, renew)

    # -- the job -------------------------------------------------------------------------

    def run(self, name: str, stop: threading.Event) -> None:
        rec = self.store.get_training_job(name)
        if rec is None or is_terminal(rec.status):
            return
        if rec.stop_requested:
            self._finish_stopped_before_start(name)
            return
        layout = self.layout(name)
        writer = self.logs.writer(LOG_GROUP, log_stream(rec.name))
        try:
            outcome = self._train(rec, layout, stop, writer)
        except JobFailed as exc:
            outcome = Outcome(exit_code=None, failure=str(exc))
        except HomeportError as exc:
            outcome = Outcome(exit_code=None, failure=exc.message)
        except Exception as exc:  # the job must end in a terminal state whatever broke
            log.exception("training job %s crashed in the runner", name)
            outcome = Outcome(exit_code=None, failure=f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            writer.close()
        self.upload_and_finish(name, outcome)

    def _finish_stopped_before_start(self, name: str) -> None:
        def stopped(rec: TrainingJobRecord) -> None:
            if rec.secondary_status != Secondary.STOPPING:
                transition(rec, Secondary.STOPPING)
            transition(rec, Secondary.STOPPED)
            rec.lease_owner = rec.lease_expires = None

        self._update(name, stopped)
        self.logs.close_stream(LOG_GROUP, log_stream(name))

    def _train(
        self, rec: TrainingJobRecord, layout: contract.JobLayout, stop: threading.Event, writer: LogWriter
    ) -> Outcome:
        def downloading(r: TrainingJobRecord) -> None:
            r.lease_owner = self.owner
            r.lease_expires = self._lease()
            if r.secondary_status in (Secondary.STARTING, Secondary.PENDING):
                transition(r, Secondary.DOWNLOADING)

        rec = self._update(rec.name, downloading)
        if rec.secondary_status != Secondary.DOWNLOADING:
            return Outcome(exit_code=None, stopped=True)
        spec = rec.spec
        image_ref = spec["AlgorithmSpecification"]["TrainingImage"]
        image = self.images.resolve(image_ref)  # ImageNotFound → the job fails naming the image
        if layout.root.exists():
            shutil.rmtree(layout.root)
        layout.create()
        contract.write_config(layout, spec)
        read_only_channels: list[str] = []
        for channel in spec.get("InputDataConfig", []):
            if stop.is_set():
                return Outcome(exit_code=None, stopped=True)
            try:
                staged = stage_channel(self.objects, channel, layout.data / channel["ChannelName"])
            except StagingError as exc:
                raise JobFailed(str(exc)) from exc
            if staged.linked:
                read_only_channels.append(staged.name)
        checkpoint = spec.get("CheckpointConfig")
        if checkpoint:
            self._download_checkpoints(S3Uri.parse(checkpoint["S3Uri"]), layout.checkpoints)

        if stop.is_set():
            return Outcome(exit_code=None, stopped=True)
        mounts = [
            Mount(layout.input, "/opt/ml/input"),
            Mount(layout.model, "/opt/ml/model"),
            Mount(layout.output, "/opt/ml/output"),
            Mount(
                layout.checkpoints,
                checkpoint.get("LocalPath", "/opt/ml/checkpoints") if checkpoint else "/opt/ml/checkpoints",
            ),
        ]
        for name in read_only_channels:
            # Hard-linked from the object store: a write through the link would change the stored object.
            mounts.insert(1, Mount(layout.data / name, f"/opt/ml/input/data/{name}", read_only=True))
        run_spec = RunSpec(
            name=f"training-job/{rec.name}/{contract.HOST}",
            image=image,
            argv=contract.command(spec),
            entrypoint=contract.entrypoint(spec),
            env=contract.environment(
                spec, rec.name, rec.arn, self.settings.region, object_store_environment(self.settings)
            ),
            mounts=mounts,
            hostname=contract.HOST,
            network="none" if spec.get("EnableNetworkIsolation") else "host",
            scratch=layout.scratch,
            resources=resources_for(spec.get("ResourceConfig", {}).get("InstanceType", "")),
            labels={"kind": "training-job", "resource": rec.name},
        )

        def training(r: TrainingJobRecord) -> None:
            if r.secondary_status == Secondary.DOWNLOADING:
                transition(r, Secondary.TRAINING)
                r.training_start_time = time.time()

        rec = self._update(rec.name, training)
        if rec.secondary_status != Secondary.TRAINING:
            return Outcome(exit_code=None, stopped=True)
        handle = self.runtime.start(run_spec)
        metrics = MetricCollector.from_spec(spec)
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        reader = threading.Thread(
            target=self._drain,
            args=(handle.output, writer, metrics, tail),
            name=f"log-{rec.name}",
            daemon=True,
        )
        reader.start()
        try:
            outcome = self._supervise(rec, handle, stop)
        except BaseException:
            handle.kill()  # never leave a job's processes running behind a runner error
            raise
        reader.join(timeout=10)
        outcome_metrics = metrics.final()
        exit_code = outcome.exit_code

        def exited(r: TrainingJobRecord) -> None:
            r.exit_code = exit_code
            r.training_end_time = time.time()
            r.final_metrics = outcome_metrics

        self._update(rec.name, exited)
        if exit_code != 0 and not outcome.stopped and not outcome.max_runtime:
            outcome.failure = self.failure_reason(layout, exit_code, list(tail))
        return outcome

    def _supervise(self, rec: TrainingJobRecord, h: RunHandle, stop: threading.Event) -> Outcome:
        max_runtime = rec.spec.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        deadline = time.monotonic() + float(max_runtime)
        next_beat = time.monotonic() + self.settings.heartbeat_seconds
        kill_at: float | None = None
        stopped = max_runtime_hit = False
        while True:
            code = h.wait(timeout=0.2)
            if code is not None:
                return Outcome(exit_code=code, stopped=stopped, max_runtime=max_runtime_hit)
            now = time.monotonic()
            if kill_at is None and (stop.is_set() or now >= deadline):
                stopped = stop.is_set()
                max_runtime_hit = not stopped
                h.terminate()  # SIGTERM, then SIGKILL after the grace period, like `docker stop`
                kill_at = now + self.settings.stop_grace_seconds
            if kill_at is not None and now >= kill_at:
                h.kill()
            if now >= next_beat:
                self._heartbeat(rec.name)
                next_beat = now + self.settings.heartbeat_seconds

    @staticmethod
    def _drain(
        output: IO[bytes], writer: LogWriter, metrics: MetricCollector, tail: collections.deque[str]
    ) -> None:
        for raw in iter(output.readline, b""):
            line = cloudwatch_text(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            now = time.time()
            writer.write(line, now)
            metrics.feed(line, now)
            tail.append(line)

    @staticmethod
    def failure_reason(layout: contract.JobLayout, exit_code: int | None, tail: list[str]) -> str:
        failure = layout.output / "failure"
        if failure.is_file():
            text = failure.read_text(encoding="utf-8", errors="replace")[:FAILURE_REASON_LIMIT]
            if text.strip():
                return text
        lines = "\n".join(tail[-10:])
        return _truncate(
            f"AlgorithmError: the training process exited with code {exit_code}. Last log lines:\n{lines}"
        )

    def _download_checkpoints(self, uri: S3Uri, dest: Path) -> None:
        if not self.objects.bucket_exists(uri.bucket):
            return  # nothing checkpointed yet; the bucket is created on the first upload
        prefix = uri.key.rstrip("/") + "/" if uri.key else ""
        for info in self.objects.list(S3Uri(uri.bucket, prefix)):
            rel = info.key[len(prefix) :]
            if rel and not rel.endswith("/") and ".." not in rel.split("/"):
                self.objects.get_file(S3Uri(info.bucket, info.key), dest / rel)

    # -- upload and the final state --------------------------------------------------------

    def upload_and_finish(self, name: str, outcome: Outcome) -> None:
        """Package and upload what the job wrote, then set its terminal status.

        Also the entry point after a server restart for jobs whose process had already exited.
        """

        def uploading(r: TrainingJobRecord) -> None:
            if r.secondary_status in (Secondary.TRAINING, Secondary.STOPPING):
                transition(r, Secondary.UPLOADING)

        rec = self._update(name, uploading)
        layout = self.layout(name)
        failure = outcome.failure
        if rec.secondary_status == Secondary.UPLOADING and layout.model.exists():
            try:
                self._upload(rec, layout)
            except Exception as exc:
                log.exception("upload of %s failed", name)
                failure = failure or _truncate(f"ClientError: uploading the job's artifacts failed: {exc}")

        def finish(r: TrainingJobRecord) -> None:
            if is_terminal(r.status):
                return
            if outcome.max_runtime and failure is None:
                transition(r, Secondary.MAX_RUNTIME_EXCEEDED, primary=JobStatus.STOPPED)
            elif (outcome.stopped or r.stop_requested) and (failure is None or outcome.stopped):
                if r.secondary_status not in (Secondary.STOPPING, Secondary.UPLOADING):
                    transition(r, Secondary.STOPPING)
                transition(r, Secondary.STOPPED)
            elif failure is None and outcome.exit_code == 0:
                transition(r, Secondary.COMPLETED)
            else:
                r.failure_reason = (
                    failure or f"AlgorithmError: the training process exited with code {outcome.exit_code}"
                )
                transition(r, Secondary.FAILED)
            if r.training_end_time is None and r.training_start_time is not None:
                r.training_end_time = time.time()
            r.lease_owner = r.lease_expires = None

        self._update(name, finish)
        self.logs.close_stream(LOG_GROUP, log_stream(rec.name))
        shutil.rmtree(layout.root, ignore_errors=True)

    def _upload(self, rec: TrainingJobRecord, layout: contract.JobLayout) -> None:
        out = S3Uri.parse(rec.spec["OutputDataConfig"]["S3OutputPath"]).join(rec.name, "output")
        if not self.objects.bucket_exists(out.bucket):
            self.objects.create_bucket(out.bucket)
        level = self.settings.compression_level
        compress = rec.spec["OutputDataConfig"].get("CompressionType", "GZIP") != "NONE"
        for folder, object_name in ((layout.model, "model.tar.gz"), (layout.output_data, "output.tar.gz")):
            folder.mkdir(parents=True, exist_ok=True)
            archive = layout.artifacts / object_name
            pack_dir(folder, archive, level=level if compress else 0)
            self.objects.put_file(out.join(object_name), archive)
            archive.unlink(missing_ok=True)
        checkpoint = rec.spec.get("CheckpointConfig")
        if checkpoint:
            target = S3Uri.parse(checkpoint["S3Uri"])
            if not self.objects.bucket_exists(target.bucket):
                self.objects.create_bucket(target.bucket)
            for path in sorted(
                p for p in layout.checkpoints.rglob("*") if p.is_file() and not p.is_symlink()
            ):
                self.objects.put_file(target.join(path.relative_to(layout.checkpoints).as_posix()), path)
