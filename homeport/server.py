"""Composition root: builds every component from Settings and runs the HTTP server.

Start-up order: lock the data dir (one server per data dir), check the runtime can work on
this machine, migrate the metadata store, open the object store, start the job scheduler,
reconcile jobs an earlier server left behind, then accept requests.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from starlette.applications import Starlette

from homeport.api import hosting_api, tags_api, training_api, transform_api
from homeport.api.app import build_app
from homeport.api.cloudwatch_logs import build_logs_app
from homeport.api.iam import build_iam_app
from homeport.api.operations import OperationTable
from homeport.api.progress_api import progress_routes
from homeport.api.runtime_api import ASGIApp, RuntimeEdge
from homeport.api.s3.app import build_s3_app
from homeport.api.s3.elsewhere import build_s3_elsewhere_app
from homeport.api.service_model import load_service_model
from homeport.api.sigv4 import by_signing_service
from homeport.api.sts import build_sts_app
from homeport.api.validation import precompile
from homeport.config import Settings
from homeport.hosting.controller import EndpointController
from homeport.hosting.deployment import InstanceFactory
from homeport.hosting.model_data import ModelDataCache
from homeport.hosting.router import Router
from homeport.hosting.service import HostingService
from homeport.images.source import ImageSource
from homeport.logs.streams import LogStore
from homeport.runtimes.base import Runtime
from homeport.runtimes.factory import open_runtime
from homeport.storage.base import ObjectStore
from homeport.storage.endpoint_env import object_store_environment
from homeport.storage.factory import open_object_store
from homeport.storage.local import LocalObjectStore
from homeport.store.database import Store
from homeport.training.reconcile import reconcile_training
from homeport.training.runner import TrainingRunner
from homeport.training.scheduler import JobScheduler
from homeport.training.service import TrainingService
from homeport.transform.runner import TransformRunner
from homeport.transform.service import TransformService

log = logging.getLogger(__name__)

REAP_INTERVAL = 5.0


class DataDirBusy(RuntimeError):
    pass


def lock_data_dir(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / "server.lock", "a+")  # noqa: SIM115 - held for the server's lifetime
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        fh.close()
        raise DataDirBusy(f"another Homeport server is already using the data dir {data_dir}") from exc
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


@dataclass
class Homeport:
    settings: Settings
    store: Store
    objects: ObjectStore
    images: ImageSource
    runtime: Runtime
    logs: LogStore
    runner: TrainingRunner
    scheduler: JobScheduler
    training: TrainingService
    router: Router
    controller: EndpointController
    hosting: HostingService
    transform_runner: TransformRunner
    transform_scheduler: JobScheduler
    transforms: TransformService
    operations: OperationTable
    owner: str
    dead_prefix: str


def compose(settings: Settings) -> Homeport:
    runtime, images = open_runtime(settings)
    runtime.check()
    swept = runtime.sweep()  # what a crashed server of this data dir left running
    if swept:
        log.warning("removed %d leftover runs of an earlier server", swept)
    precompile(load_service_model())  # compile every shape's validators now, not on first request
    store = Store(settings.resolved_database_url)
    store.migrate()
    objects = open_object_store(
        settings.object_store, settings.objects_dir, settings.s3_endpoint_url, settings.region
    )
    logs = LogStore(settings.logs_dir)
    prefix = f"{socket.gethostname()}:{settings.data_dir.resolve()}:"
    owner = f"{prefix}{os.getpid()}:{time.time():.3f}"
    runner = TrainingRunner(settings, store, objects, images, runtime, logs, owner)
    scheduler = JobScheduler(settings.max_concurrent_jobs, runner.run)
    training = TrainingService(settings, store, scheduler)
    router = Router()
    factory = InstanceFactory(
        runtime,
        logs,
        settings.endpoints_dir,
        settings.region,
        settings.instance_stop_grace_seconds,
        object_store_environment(settings),
    )
    model_data = ModelDataCache(settings.model_cache_dir, objects)
    controller = EndpointController(settings, store, images, model_data, factory, router)
    hosting = HostingService(settings, store, controller)
    transform_runner = TransformRunner(settings, store, objects, images, model_data, factory, router)
    transform_scheduler = JobScheduler(settings.max_concurrent_jobs, transform_runner.run, name="transform")
    transforms = TransformService(settings, store, transform_scheduler)
    operations = OperationTable()
    training_api.register(operations, training)
    hosting_api.register(operations, hosting)
    transform_api.register(operations, transforms)
    tags_api.register(
        operations,
        settings,
        store,
        {
            "training-job": lambda name: store.get_training_job(name) is not None,
            "model": lambda name: store.get_model(name) is not None,
            "endpoint-config": lambda name: store.get_endpoint_config(name) is not None,
            "endpoint": lambda name: store.get_endpoint(name) is not None,
            "transform-job": lambda name: store.get_transform_job(name) is not None,
        },
    )
    return Homeport(
        settings,
        store,
        objects,
        images,
        runtime,
        logs,
        runner,
        scheduler,
        training,
        router,
        controller,
        hosting,
        transform_runner,
        transform_scheduler,
        transforms,
        operations,
        owner,
        prefix,
    )


def create_app(settings: Settings) -> ASGIApp:
    lock = lock_data_dir(settings.data_dir)
    hp = compose(settings)
    stop_reaper = threading.Event()

    def reaper() -> None:
        while not stop_reaper.wait(REAP_INTERVAL):
            try:
                reconcile_training(hp.store, hp.runner, hp.scheduler, hp.owner, hp.dead_prefix, startup=False)
            except Exception:
                log.exception("periodic reconciliation failed")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        hp.scheduler.start()
        reconcile_training(hp.store, hp.runner, hp.scheduler, hp.owner, hp.dead_prefix, startup=True)
        thread = threading.Thread(target=reaper, name="reaper", daemon=True)
        thread.start()
        hp.controller.restore()
        hp.controller.start_monitor()
        hp.transform_runner.loop = asyncio.get_running_loop()
        hp.transform_scheduler.start()
        hp.transforms.settle_after_restart()
        try:
            yield
        finally:
            stop_reaper.set()
            hp.controller.shutdown()
            await hp.router.close()
            hp.store.close()
            lock.close()
            hp.runtime.close()  # training runs still going (serving instances are stopped above)

    edge = RuntimeEdge(settings, hp.store, hp.router)
    app = build_app(hp.operations, lifespan, [*edge.routes(), *progress_routes(hp.store)])
    app.state.homeport = hp
    # Other AWS APIs on the same URL, told apart by the signature's scope (read once per request).
    services = {
        "sts": build_sts_app(settings.account),
        "iam": build_iam_app(settings.account),
        "logs": build_logs_app(hp.logs, account=settings.account),
    }
    # The S3 API over the local store; with an S3 backend, S3 clients are told to use that S3.
    services["s3"] = (
        build_s3_app(hp.objects, settings.region)
        if isinstance(hp.objects, LocalObjectStore)
        else build_s3_elsewhere_app(settings.s3_endpoint_url)
    )
    return by_signing_service(edge.wrap(app), services)


def serve(settings: Settings) -> None:
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
