"""Playbook runs beside the cycle: a bounded set of worker threads, one per job under way.

The remediate stage hands a job (a run's chain: gates, check pass, real run, rollback; a suggest
check; the rollback after a failed verification) to ``Workers.start`` under a key (``run:<id>``,
``rollback:<id>``). A key already under way is refused, so several cycles that see the same pending
run start it once. There is no queue: a job that finds no free worker is not taken, its run stays
pending in the store and a later cycle offers it again, so nothing waits in memory that a crash
could lose. What a finished job returns (the runs it changed) is handed to the next cycle by
``finished()``. With ``limit`` 0 a job runs at once in the caller's thread: the sequential mode.

A run's chain takes the start turn (``hold_start``) before its gates and gives it back once its
real run is marked running (or the chain ends before): the next chain's gates then count it (rate
limits, cooldown, concurrency), and chains are decided in the order the stage handed them over
(oldest run first), as when they ran one after the other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from agent.log import kv

log = logging.getLogger(__name__)


class Workers:
    """The jobs under way in this agent process, by key. ``on_thread_end()`` is called on a
    worker's thread as its job ends (the Context closes the store's connection of that thread)."""

    def __init__(self) -> None:
        self.on_thread_end: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._finished: list[Any] = []
        self._turns = threading.Condition(self._lock)
        self._waiting: list[str] = []   # chains to take the start turn, in the order handed over
        self._holder: str | None = None

    def busy(self, key: str) -> bool:
        with self._lock:
            return key in self._threads

    def room(self, limit: int) -> bool:
        """A job could start now: sequential mode, or fewer than ``limit`` under way."""
        with self._lock:
            return limit == 0 or len(self._threads) < limit

    def under_way(self) -> list[str]:
        with self._lock:
            return sorted(self._threads)

    def start(self, key: str, job: Callable[[], Iterable[Any]], *, limit: int, ordered: bool = False) -> bool:
        """Run ``job`` on a worker of its own; False when ``key`` is under way or ``limit`` jobs
        are. ``ordered``: the job will take the start turn, after the ordered jobs handed over
        before it. ``limit`` 0: run it now, in this thread (its exceptions propagate)."""
        if limit == 0:
            self._collect(job())
            return True
        with self._lock:
            if key in self._threads or len(self._threads) >= limit:
                return False
            thread = threading.Thread(target=self._run, args=(key, job), name=f"remediation-{key}", daemon=True)
            self._threads[key] = thread
            if ordered:
                self._waiting.append(key)
        thread.start()
        return True

    def hold_start(self, key: str, stopping: Callable[[], bool]) -> bool:
        """Wait for ``key``'s start turn; False (and out of the line) when ``stopping()``. A key
        not in the line (the sequential mode) has its turn at once."""
        with self._turns:
            while key in self._waiting and (self._waiting[0] != key or self._holder is not None):
                if stopping():
                    self._leave(key)
                    return False
                self._turns.wait(0.2)
            if key in self._waiting:
                self._waiting.remove(key)
                self._holder = key
            return True

    def release_start(self, key: str) -> None:
        with self._turns:
            self._leave(key)

    def _leave(self, key: str) -> None:
        """``key`` gives up its turn, or its place in the line (caller holds the lock)."""
        if key in self._waiting:
            self._waiting.remove(key)
        if self._holder == key:
            self._holder = None
        self._turns.notify_all()

    def _run(self, key: str, job: Callable[[], Iterable[Any]]) -> None:
        try:
            self._collect(job())
        except Exception:  # the job records its own failures; this keeps the slot from leaking
            log.exception(kv("remediation.worker_failed", job=key))
        finally:
            if self.on_thread_end is not None:
                try:
                    self.on_thread_end()
                except Exception:
                    log.exception(kv("remediation.worker_end_failed", job=key))
            with self._lock:
                self._threads.pop(key, None)
                self._leave(key)  # a job that ended without giving its turn back

    def _collect(self, results: Iterable[Any]) -> None:
        with self._lock:
            self._finished.extend(results)

    def finished(self) -> list[Any]:
        """What the jobs that ended since the last call returned, oldest first."""
        with self._lock:
            out, self._finished = self._finished, []
        return out

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the jobs under way (at most ``timeout_s``); True when none is left."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._lock:
                threads = list(self._threads.values())
            if not threads:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            threads[0].join(left)
