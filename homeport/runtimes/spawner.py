"""The one thread that forks sandbox launchers, so their parent-death signal means "server died".

``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the process.
Forking from whichever request or supervisor thread called ``start()`` would SIGKILL a run
as soon as that thread ended. Every launcher is therefore forked by a single daemon thread
that lives as long as the process.

Concurrency: callers on any thread hand a callable to the spawner thread through a queue and
block on a Future for its result; the spawner runs them one at a time (each is a fork+exec,
about a millisecond).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class Spawner:
    def __init__(self, name: str = "homeport-spawner") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the spawner thread and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            return fn()
        self._ensure_thread()
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        return future.result()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                # Started on first use: no threads at import or construction time.
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            fn, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, who re-raises it
                future.set_exception(exc)
