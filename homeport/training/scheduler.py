"""Capacity-limited execution of training jobs.

Concurrency: a fixed pool of ``capacity`` worker threads pulls job names from a FIFO queue;
each worker runs one whole job at a time (the runtime needs the supervising thread to live as
long as the job's processes). Jobs beyond capacity wait in the queue. Stop requests reach a
running job through its :class:`threading.Event`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

JobFn = Callable[[str, threading.Event], None]


class JobScheduler:
    def __init__(self, capacity: int, run: JobFn, name: str = "training") -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._run = run
        self._name = name
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}
        self._queued: set[str] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._capacity):
            thread = threading.Thread(target=self._worker, name=f"{self._name}-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, key: str) -> None:
        with self._lock:
            if key in self._queued or key in self._running:
                return
            self._queued.add(key)
        self._queue.put(key)

    def saturated(self) -> bool:
        """True when a newly submitted job would have to wait for a free worker."""
        with self._lock:
            return len(self._running) + len(self._queued) >= self._capacity

    def request_stop(self, key: str) -> bool:
        """Signal a running job; True if it was running here."""
        with self._lock:
            event = self._running.get(key)
        if event is None:
            return False
        event.set()
        return True

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def shutdown(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _worker(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            event = threading.Event()
            with self._lock:
                self._queued.discard(key)
                self._running[key] = event
            try:
                self._run(key, event)
            except Exception:
                log.exception("%s job %s failed in the scheduler", self._name, key)
            finally:
                with self._lock:
                    self._running.pop(key, None)
