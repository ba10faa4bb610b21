"""Builds the configured runtime by name; imports backends lazily."""

from __future__ import annotations

from homeport.runtimes.base import Runtime

RUNTIMES = ("process",)


def open_runtime(name: str) -> Runtime:
    if name == "process":
        from homeport.runtimes.process import ProcessRuntime

        return ProcessRuntime()
    raise ValueError(f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIMES)}")
