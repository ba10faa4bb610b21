"""Builds the configured runtime and the image source that goes with it; imports backends lazily."""

from __future__ import annotations

import socket

from homeport.config import Settings
from homeport.images.source import ImageSource
from homeport.runtimes.base import Runtime

RUNTIMES = ("process", "docker")
GPU_MODES = ("auto", "on", "off")


def open_runtime(settings: Settings) -> tuple[Runtime, ImageSource]:
    """The runtime named by ``settings.runtime`` and where its images come from (the user's
    images first, then Homeport's built-ins: :mod:`homeport.images.builtin`)."""
    from homeport.images.builtin import BuiltinImages, engine_builtin, local_builtin

    work_dir = settings.data_dir / "builtins"
    if settings.runtime == "process":
        from homeport.images.registry import ImageRegistry
        from homeport.images.venvs import VenvCache
        from homeport.runtimes.process import ProcessRuntime

        registry = ImageRegistry(settings.images_dir, VenvCache(settings.venvs_dir))
        return ProcessRuntime(), BuiltinImages(registry, local_builtin(registry), work_dir)
    if settings.runtime == "docker":
        from homeport.images.engine import EngineImages
        from homeport.runtimes.container import ContainerRuntime, scope_for

        if settings.gpus not in GPU_MODES:
            raise ValueError(f"unknown --gpus {settings.gpus!r}; choose one of: {', '.join(GPU_MODES)}")
        runtime = ContainerRuntime(
            scope_for(settings.data_dir, socket.gethostname()),
            network_mode=settings.container_network,
            gpus=settings.gpus,
        )
        engine = EngineImages(runtime.client)
        return runtime, BuiltinImages(engine, engine_builtin(engine), work_dir)
    raise ValueError(f"unknown runtime {settings.runtime!r}; choose one of: {', '.join(RUNTIMES)}")
