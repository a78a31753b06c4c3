"""Interval jobs timed by a monotonic clock: the daemon's cycles, refits and retention.

A job starts every ``interval_s`` seconds of the monotonic clock given (``time.monotonic`` by
default), each start on a thread of its own. A start that comes while the job's previous run is
still going is skipped, never stacked (``on_skipped`` hears of it); starts missed while the
process was stopped or starved are coalesced into one. The wall clock plays no part: stepping it
back ten minutes (NTP, a VM resumed from a snapshot) neither stops the cycles nor, stepped
forward, crowds them.

    scheduler = Scheduler(monotonic=time.monotonic)
    scheduler.add("cycle", run_cycle, interval_s=60)          # first start at once
    scheduler.add("retention", prune, interval_s=3600, first_in_s=3600)
    scheduler.run()                                            # until stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.log import kv

log = logging.getLogger(__name__)

# How long the loop sleeps at most before it reads the clock again (a clock given by a test moves
# without waking it).
MAX_WAIT_S = 0.5


@dataclass
class _Job:
    name: str
    func: Callable[[], object]
    interval_s: float
    due: float
    thread: threading.Thread | None = None

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Scheduler:
    """``on_skipped(name, reason)``: a start was skipped (the previous run still going).
    ``on_thread_end()``: called on a job's thread as its run ends, to release what the thread
    holds (the store's per-thread connection), since every run has a thread of its own."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic,
                 on_skipped: Callable[[str, str], None] | None = None,
                 on_thread_end: Callable[[], None] | None = None) -> None:
        self.monotonic = monotonic
        self.on_skipped = on_skipped
        self.on_thread_end = on_thread_end
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.running = False
        self.rounds = 0  # times the loop has read the clock (a test waits on it)

    def add(self, name: str, func: Callable[[], object], *, interval_s: float, first_in_s: float = 0.0) -> None:
        with self._lock:
            self._jobs[name] = _Job(name=name, func=func, interval_s=interval_s,
                                    due=self.monotonic() + first_in_s)
        self._wake.set()

    def run_now(self, name: str) -> None:
        """Start ``name`` at once (unless it is running), then every interval from now."""
        with self._lock:
            self._jobs[name].due = self.monotonic()
        self._wake.set()

    def reschedule(self, name: str, interval_s: float) -> None:
        """A new interval, counted from the job's last start."""
        with self._lock:
            job = self._jobs[name]
            job.due += interval_s - job.interval_s
            job.interval_s = interval_s
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Start jobs as they come due until ``stop()``."""
        self.running = True
        try:
            while not self._stop.is_set():
                wait = self._start_due()
                self.rounds += 1
                self._wake.wait(min(wait, MAX_WAIT_S))
                self._wake.clear()
        finally:
            self.running = False

    def _start_due(self) -> float:
        """Start what is due; seconds until the next job is."""
        now = self.monotonic()
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.due > now:
                continue
            missed = int((now - job.due) // job.interval_s)
            job.due += (missed + 1) * job.interval_s  # starts missed meanwhile are one start
            if job.running():
                self._skipped(job.name, "previous run still going")
                continue
            job.thread = threading.Thread(target=self._call, args=(job,), name=job.name, daemon=True)
            job.thread.start()
        with self._lock:
            return max(0.0, min((job.due for job in self._jobs.values()), default=MAX_WAIT_S) - now)

    def _call(self, job: _Job) -> None:
        try:
            job.func()
        except Exception:  # the job logs its own failures; this keeps the scheduler going
            log.exception(kv("schedule.job_failed", job=job.name))
        finally:
            if self.on_thread_end is not None:
                try:
                    self.on_thread_end()
                except Exception:
                    log.exception(kv("schedule.thread_end_failed", job=job.name))

    def _skipped(self, name: str, reason: str) -> None:
        if self.on_skipped is not None:
            self.on_skipped(name, reason)
