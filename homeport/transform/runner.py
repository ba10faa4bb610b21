"""Runs one batch transform job: instances up, records through them, one ``.out`` per input object.

Concurrency: the job runs on a scheduler worker thread. Requests go through the server's
router (an asyncio object) with ``run_coroutine_threadsafe``; a window of
``instances × MaxConcurrentTransforms`` requests is in flight across the job, and results are
written in submission order, so each output keeps its input's record order. Memory stays
bounded by that window of batches (each ≤ MaxPayloadInMB): inputs are streamed, outputs are
written to a temporary file and uploaded only once the whole object succeeded.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import http.client
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from homeport.config import Settings
from homeport.hosting.deployment import DeployError, Deployment, InstanceFactory, plan_variants
from homeport.hosting.instance import ServingInstance
from homeport.hosting.model_data import ModelDataCache
from homeport.hosting.router import Invocation, Router, RouterError
from homeport.images.source import ImageSource
from homeport.storage.base import ObjectStore, S3Uri
from homeport.store.database import Store
from homeport.store.records import TransformJobRecord
from homeport.transform import records as recordlib
from homeport.transform.dataprocessing import DataProcessing, DataProcessingError
from homeport.transform.inputs import InputError, InputObject, list_inputs
from homeport.transform.states import TERMINAL, TransformStatus, check_transition

log = logging.getLogger(__name__)

LOG_GROUP = "TransformJobs"
DEFAULT_PAYLOAD_MB = 6
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRIES = 3
STRATEGY_ENV = {"SingleRecord": "SINGLE_RECORD", "MultiRecord": "MULTI_RECORD"}
STRATEGY_FROM_ENV = {"SINGLE_RECORD": "SingleRecord", "MULTI_RECORD": "MultiRecord"}


class TransformFailed(Exception):
    """Ends the job as Failed; the message is its FailureReason."""


class TransformStopped(Exception):
    """StopTransformJob arrived and the in-flight requests did not finish within the grace period."""


@dataclass
class Parameters:
    max_concurrent: int
    strategy: str
    max_payload_mb: int


@dataclass
class ObjectOutput:
    """The output file of one input object, filled in record order."""

    source: InputObject
    path: Path
    fh: IO[bytes]
    pending: int = 0
    submitted_all: bool = False
    records: int = 0


@dataclass
class Progress:
    objects_total: int = 0
    objects_done: int = 0
    records_done: int = 0
    last_saved: float = field(default_factory=time.monotonic)


class TransformRunner:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        objects: ObjectStore,
        images: ImageSource,
        model_data: ModelDataCache,
        factory: InstanceFactory,
        router: Router,
    ) -> None:
        self.settings = settings
        self.store = store
        self.objects = objects
        self.images = images
        self.model_data = model_data
        self.factory = factory
        self.router = router
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's loop, set at start-up

    # -- status ------------------------------------------------------------------------------------

    def _set(
        self, name: str, to: TransformStatus, mutate: Callable[[TransformJobRecord], None] | None = None
    ) -> None:
        def apply(rec: TransformJobRecord) -> None:
            if rec.status in TERMINAL:
                return
            if rec.status != to:
                check_transition(rec.status, to)
            rec.status = to.value
            rec.last_modified_time = time.time()
            if to.value in TERMINAL:
                rec.transform_end_time = rec.last_modified_time
            if mutate is not None:
                mutate(rec)

        self.store.update_transform_job(name, apply)

    def _fail(self, name: str, reason: str) -> None:
        def record(rec: TransformJobRecord) -> None:
            rec.failure_reason = reason[:1024]

        self._set(name, TransformStatus.FAILED, record)

    # -- the job -----------------------------------------------------------------------------------

    def run(self, name: str, stop: threading.Event) -> None:
        rec = self.store.get_transform_job(name)
        if rec is None or rec.status in TERMINAL:
            return
        if rec.stop_requested:
            self._set(name, TransformStatus.STOPPED)
            return

        def started(r: TransformJobRecord) -> None:
            r.transform_start_time = time.time()

        self.store.update_transform_job(name, started)
        work = self.settings.data_dir / "transform" / name.lower()
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        deployment: Deployment | None = None
        try:
            deployment = self._start_instances(rec)
            self._process(rec, deployment, work, stop)
        except TransformStopped:
            self._set(name, TransformStatus.STOPPED)
        except TransformFailed as failed:
            self._fail(name, str(failed))
        except Exception as exc:
            log.exception("transform job %s crashed", name)
            self._fail(name, f"InternalServerError: {type(exc).__name__}: {exc}")
        else:
            if stop.is_set():
                self._set(name, TransformStatus.STOPPED)
            else:
                self._set(name, TransformStatus.COMPLETED)
        finally:
            if deployment is not None:
                self.router.withdraw(deployment.key)
                for instance in deployment.all_instances():
                    self.factory.stop(instance)
                deployment.holds.close()
            shutil.rmtree(work, ignore_errors=True)

    def _start_instances(self, rec: TransformJobRecord) -> Deployment:
        spec = rec.spec
        model = self.store.get_model(spec["ModelName"])
        if model is None:
            raise TransformFailed(f'Could not find model "{self.settings.arn("model", spec["ModelName"])}".')
        count = int(spec["TransformResources"]["InstanceCount"])
        config = {
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model.name,
                    "InitialInstanceCount": count,
                    "InstanceType": spec["TransformResources"]["InstanceType"],
                }
            ]
        }
        deployment = Deployment(
            endpoint=f"transform-{rec.name}",
            config_name="",
            variants={},
            log_group=LOG_GROUP,
            kind="transform-job",
        )
        try:
            deployment.variants = plan_variants(
                config, {model.name: model.spec}, self.images, self.model_data, deployment.holds
            )
            plan = deployment.variants["AllTraffic"]
            plan.env.update(self._batch_env(spec))
            plan.instances.extend(self.factory.start_many(deployment, plan, count))
        except DeployError as exc:
            deployment.holds.close()
            raise TransformFailed(str(exc)) from exc
        self.router.publish(deployment.route())
        return deployment

    @staticmethod
    def _batch_env(spec: dict[str, Any]) -> dict[str, str]:
        env = {"SAGEMAKER_BATCH": "true"}
        if "MaxPayloadInMB" in spec:
            env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(spec["MaxPayloadInMB"])
        if "BatchStrategy" in spec:
            env["SAGEMAKER_BATCH_STRATEGY"] = STRATEGY_ENV[spec["BatchStrategy"]]
        if spec.get("MaxConcurrentTransforms"):
            env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(spec["MaxConcurrentTransforms"])
        env.update({str(k): str(v) for k, v in spec.get("Environment", {}).items()})
        return env

    def _parameters(self, spec: dict[str, Any], deployment: Deployment) -> Parameters:
        """Request values, then the container's GET /execution-parameters, then defaults."""
        offered: dict[str, Any] = {}
        instance = deployment.all_instances()[0]
        with contextlib.suppress(Exception):
            sock = instance.connect(5.0)
            conn = http.client.HTTPConnection("localhost", 8080, timeout=5.0)
            conn.sock = sock
            conn.request("GET", "/execution-parameters")
            response = conn.getresponse()
            if response.status == 200:
                offered = json.loads(response.read())
            conn.close()
        strategy = spec.get("BatchStrategy") or STRATEGY_FROM_ENV.get(str(offered.get("BatchStrategy")))
        strategy = strategy or offered.get("BatchStrategy") or "MultiRecord"
        if strategy not in STRATEGY_ENV:
            strategy = "MultiRecord"
        payload = spec.get("MaxPayloadInMB", offered.get("MaxPayloadInMB", DEFAULT_PAYLOAD_MB))
        concurrent = spec.get("MaxConcurrentTransforms") or offered.get("MaxConcurrentTransforms") or 1
        return Parameters(int(concurrent), str(strategy), int(payload))

    # -- records through instances -----------------------------------------------------------------

    def _process(
        self, rec: TransformJobRecord, deployment: Deployment, work: Path, stop: threading.Event
    ) -> None:
        spec = rec.spec
        try:
            inputs = list_inputs(self.objects, spec["TransformInput"]["DataSource"])
        except InputError as exc:
            raise TransformFailed(str(exc)) from exc
        params = self._parameters(spec, deployment)
        transform_input = spec["TransformInput"]
        output = spec["TransformOutput"]
        content_type = transform_input.get("ContentType")
        accept = output.get("Accept")
        try:
            processing = DataProcessing.from_spec(spec.get("DataProcessing"), content_type, accept)
        except DataProcessingError as exc:
            raise TransformFailed(str(exc)) from exc
        headers = [(k, v) for k, v in (("content-type", content_type), ("accept", accept)) if v]
        client = spec.get("ModelClientConfig", {})
        timeout = float(client.get("InvocationsTimeoutInSeconds", DEFAULT_TIMEOUT))
        retries = int(client.get("InvocationsMaxRetries", DEFAULT_RETRIES))
        window = max(1, params.max_concurrent * int(spec["TransformResources"]["InstanceCount"]))
        split_type = transform_input.get("SplitType", "None")
        assemble_line = output.get("AssembleWith", "None") == "Line"
        out_prefix = S3Uri.parse(output["S3OutputPath"])
        if not self.objects.bucket_exists(out_prefix.bucket):
            self.objects.create_bucket(out_prefix.bucket)
        progress = Progress(objects_total=len(inputs))
        self._save_progress(rec.name, progress, force=True)
        if recordlib.streams_whole_object(split_type, params.strategy, params.max_payload_mb):
            if processing.active:
                raise TransformFailed(
                    "DataProcessing cannot be combined with MaxPayloadInMB 0 (a streamed object)."
                )
            self._stream_objects(
                rec.name,
                deployment,
                inputs,
                work,
                headers,
                timeout,
                window,
                assemble_line,
                out_prefix,
                progress,
                stop,
                transform_input.get("CompressionType", "None"),
            )
            return
        in_flight: collections.deque[
            tuple[ObjectOutput, list[bytes], int, concurrent.futures.Future[Invocation]]
        ]
        in_flight = collections.deque()
        route = deployment.key

        def finish_oldest() -> None:
            out, originals, count, future = in_flight[0]
            result = self._result(self._wait(future, stop), out.source, count)
            in_flight.popleft()
            body = result.body
            if processing.transforms_output:
                outputs = processing.split_output(body, count, accept)
                body = b"\n".join(
                    processing.join_and_filter_output(i, o) for i, o in zip(originals, outputs, strict=True)
                )
                if assemble_line or split_type == "Line":
                    body += b"\n"
            if assemble_line and not body.endswith(b"\n"):
                body += b"\n"
            out.fh.write(body)
            out.pending -= 1
            out.records += count
            progress.records_done += count
            if out.submitted_all and out.pending == 0:
                self._upload(out, out_prefix)
                progress.objects_done += 1
            self._save_progress(rec.name, progress)

        for number, source in enumerate(inputs):
            if stop.is_set():
                break
            out_path = work / f"{number}.out"
            out = ObjectOutput(source, out_path, out_path.open("wb"))
            try:
                for batch, originals in self._batches(source, transform_input, params, processing):
                    if stop.is_set():
                        break
                    while len(in_flight) >= window:
                        finish_oldest()
                    future = self._submit(route, batch.data, headers, timeout, retries)
                    in_flight.append((out, originals, batch.count, future))
                    out.pending += 1
            except recordlib.RecordTooLarge as exc:
                raise TransformFailed(str(exc)) from exc
            except (recordlib.RecordError, OSError, EOFError, DataProcessingError) as exc:
                raise TransformFailed(f"ClientError: could not read input {source.uri}: {exc}") from exc
            out.submitted_all = True
            if out.pending == 0:
                self._upload(out, out_prefix)
                progress.objects_done += 1
        try:
            while in_flight:
                finish_oldest()
        except TransformStopped:
            for _, _, _, future in in_flight:
                future.cancel()
            raise
        self._save_progress(rec.name, progress, force=True)

    # -- MaxPayloadInMB 0: each object streamed to the container in one chunked request ------------

    def _stream_objects(
        self,
        name: str,
        deployment: Deployment,
        inputs: list[InputObject],
        work: Path,
        headers: list[tuple[str, str]],
        timeout: float,
        window: int,
        assemble_line: bool,
        out_prefix: S3Uri,
        progress: Progress,
        stop: threading.Event,
        compression: str,
    ) -> None:
        instances = deployment.all_instances()

        def one(number: int, source: InputObject) -> None:
            if stop.is_set():
                return
            instance = instances[number % len(instances)]
            out_path = work / f"{number}.out"
            with out_path.open("wb") as out:
                ends_with_newline = self._stream_one(instance, source, headers, timeout, out, compression)
                if assemble_line and not ends_with_newline:
                    out.write(b"\n")
            self.objects.put_file(out_prefix.join(source.relative + ".out"), out_path)
            out_path.unlink(missing_ok=True)
            progress.objects_done += 1

        with concurrent.futures.ThreadPoolExecutor(
            max_workers=window, thread_name_prefix="transform-stream"
        ) as pool:
            futures = [pool.submit(one, number, source) for number, source in enumerate(inputs)]
            for future in futures:
                try:
                    future.result()
                except TransformFailed:
                    stop.set()  # the others stop taking new objects
                    for other in futures:
                        other.cancel()
                    raise
                self._save_progress(name, progress)

    def _stream_one(
        self,
        instance: ServingInstance,
        source: InputObject,
        headers: list[tuple[str, str]],
        timeout: float,
        out: IO[bytes],
        compression: str,
    ) -> bool:
        """POST the object chunked, write the answer as it arrives; True if the answer ends in a newline."""
        request_headers = dict(headers)
        try:
            sock = instance.connect(timeout)
        except OSError as exc:
            raise TransformFailed(
                f"ClientError: the model container could not be reached for input {source.uri}: {exc}"
            ) from exc
        conn = http.client.HTTPConnection("localhost", 8080, timeout=timeout)
        conn.sock = sock
        last = b""
        try:
            with self.objects.open_read(source.uri) as raw:
                stream = recordlib.open_input(raw, compression, uri=str(source.uri))
                conn.request(
                    "POST",
                    "/invocations",
                    body=recordlib.stream_chunks(stream),
                    headers=request_headers,
                    encode_chunked=True,
                )
            response = conn.getresponse()
            if response.status >= 400:
                text = response.read(512).decode("utf-8", errors="replace")
                raise TransformFailed(
                    f"ClientError: the model container answered {response.status} for input {source.uri}: "
                    f"{text}"
                )
            while chunk := response.read(1 << 20):
                out.write(chunk)
                last = chunk
        except (OSError, http.client.HTTPException) as exc:
            raise TransformFailed(
                f"ClientError: streaming input {source.uri} to the model container failed: {exc}"
            ) from exc
        finally:
            conn.close()
        return last.endswith(b"\n")

    def _batches(
        self,
        source: InputObject,
        transform_input: dict[str, Any],
        params: Parameters,
        processing: DataProcessing,
    ) -> Iterator[tuple[recordlib.Batch, list[bytes]]]:
        limit = params.max_payload_mb * 1024 * 1024
        split_type = transform_input.get("SplitType", "None")
        uri = str(source.uri)
        with self.objects.open_read(source.uri) as raw:
            stream = recordlib.open_input(raw, transform_input.get("CompressionType", "None"), uri=uri)
            if (
                recordlib.normalize_split_type(split_type) == "Line"
                and recordlib.normalize_strategy(params.strategy) == recordlib.MULTI_RECORD
                and not processing.active
            ):
                for batch in recordlib.line_batches(stream, limit, uri=uri):
                    yield batch, []
                return
            records = recordlib.split_records(stream, split_type, max_record_bytes=limit, uri=uri)
            originals: collections.deque[bytes] = collections.deque()
            if processing.active:
                records = self._filtered(records, processing, originals)
            for batch in recordlib.batches(records, params.strategy, limit, split_type=split_type, uri=uri):
                yield batch, [originals.popleft() for _ in range(batch.count)] if processing.active else []

    @staticmethod
    def _filtered(
        records: Iterator[bytes], processing: DataProcessing, originals: collections.deque[bytes]
    ) -> Iterator[bytes]:
        for record in records:
            originals.append(record)
            yield processing.filter_input(record)

    def _submit(
        self, route: str, body: bytes, headers: list[tuple[str, str]], timeout: float, retries: int
    ) -> concurrent.futures.Future[Invocation]:
        assert self.loop is not None, "the transform runner needs the server's event loop"

        async def attempt() -> Invocation:
            for n in range(retries + 1):
                try:
                    result = await self.router.invoke(route, body, headers, None, timeout=timeout)
                except RouterError:
                    if n == retries:
                        raise
                    continue
                if result.status < 500 or n == retries:
                    return result
            raise AssertionError("unreachable")

        return asyncio.run_coroutine_threadsafe(attempt(), self.loop)

    def _wait(
        self, future: concurrent.futures.Future[Invocation], stop: threading.Event
    ) -> concurrent.futures.Future[Invocation]:
        """Wait for one request; after a stop, at most the grace period, then cut it."""
        cut_at: float | None = None
        while True:
            try:
                future.result(timeout=0.2)
                return future
            except concurrent.futures.TimeoutError:
                pass
            except Exception:
                return future  # its error is reported by _result
            if stop.is_set():
                now = time.monotonic()
                cut_at = cut_at if cut_at is not None else now + self.settings.stop_grace_seconds
                if now >= cut_at:
                    future.cancel()
                    raise TransformStopped()

    @staticmethod
    def _result(future: concurrent.futures.Future[Invocation], source: InputObject, count: int) -> Invocation:
        try:
            result = future.result()
        except RouterError as exc:
            raise TransformFailed(
                f"ClientError: the model container could not be reached for input {source.uri}: {exc}"
            ) from exc
        if result.status >= 400:
            text = result.body[:512].decode("utf-8", errors="replace")
            raise TransformFailed(
                f"ClientError: the model container answered {result.status} for a batch of {count} "
                f"record(s) of input {source.uri}: {text}"
            )
        return result

    def _upload(self, out: ObjectOutput, prefix: S3Uri) -> None:
        out.fh.close()
        self.objects.put_file(prefix.join(out.source.relative + ".out"), out.path)
        out.path.unlink(missing_ok=True)

    def _save_progress(self, name: str, progress: Progress, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - progress.last_saved < 1.0:
            return
        progress.last_saved = now
        snapshot = {
            "ObjectsTotal": progress.objects_total,
            "ObjectsDone": progress.objects_done,
            "RecordsDone": progress.records_done,
        }
        self.store.update_transform_job(name, lambda r: setattr(r, "progress", snapshot))
