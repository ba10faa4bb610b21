"""Builds the configured runtime and the image source that goes with it; imports backends lazily."""

from __future__ import annotations

import socket

from homeport.config import Settings
from homeport.images.source import ImageSource
from homeport.runtimes.base import Runtime

RUNTIMES = ("process", "docker")
GPU_MODES = ("auto", "on", "off")


def open_runtime(settings: Settings) -> tuple[Runtime, ImageSource]:
    """The runtime named by ``settings.runtime`` and where its images come from."""
    if settings.runtime == "process":
        from homeport.images.registry import ImageRegistry
        from homeport.images.venvs import VenvCache
        from homeport.runtimes.process import ProcessRuntime

        return ProcessRuntime(), ImageRegistry(settings.images_dir, VenvCache(settings.venvs_dir))
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
        return runtime, EngineImages(runtime.client)
    raise ValueError(f"unknown runtime {settings.runtime!r}; choose one of: {', '.join(RUNTIMES)}")
