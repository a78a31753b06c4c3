"""Runs the ``aiops`` CLI with faults a test cannot cause from outside the process.

- ``FAULT_CLOCK_FILE``: the agent's wall clock is the system's plus the seconds written in that
  file, read again whenever it changes: a clock hours fast, or one that NTP steps while the agent
  runs. The monotonic clock is left alone, as NTP leaves it. (libfaketime cannot do this here: with
  ``FAKETIME_DONT_FAKE_MONOTONIC=1`` Python's ``time.sleep`` fails with EINVAL on this Debian.)
- ``FAULT_FREEZE_FILE``: once that file exists, the next time the agent takes the store's
  ``leases`` lock it stops itself (SIGSTOP) inside that transaction, as a process frozen by a
  debugger, a VM pause or the OOM killer's swap storm would, holding the lock (it writes its pid
  to ``FAULT_FREEZE_FILE.frozen`` first).
- ``FAULT_STUCK_COLLECT``: the collect stage touches that file, then sits ten minutes in a call
  that ignores everything, SIGTERM included (a query to a server that stopped answering).

Used as ``python tests/agent/fault_agent.py aiops-args...`` with the fault's variables set.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path


class FileOffsetClock:
    """``utcnow()`` plus the seconds in ``path`` (0 while it is missing)."""

    def __init__(self, path: Path, now: Callable[[], datetime]) -> None:
        self.path, self.now = path, now
        self._seen: tuple[float, float] | None = None  # (mtime, offset)

    def offset(self) -> float:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return 0.0
        if self._seen is None or self._seen[0] != mtime:
            self._seen = (mtime, float(self.path.read_text().strip() or 0))
        return self._seen[1]

    def __call__(self) -> datetime:
        return self.now() + timedelta(seconds=self.offset())


def skew_the_wall_clock(path: Path) -> None:
    from agent.clock import utcnow
    from agent.context import Context

    clock = FileOffsetClock(path, utcnow)
    create = Context.create.__func__  # type: ignore[attr-defined]

    def created(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["clock"] = clock
        return create(cls, *args, **kwargs)

    Context.create = classmethod(created)  # type: ignore[method-assign, assignment]


def freeze_in_the_leases_lock(trigger: Path) -> None:
    from agent.store.base import StoreBase

    serialize = StoreBase.serialize

    def frozen(self, name: str) -> None:  # type: ignore[no-untyped-def]
        serialize(self, name)
        if name == "leases" and trigger.exists():
            trigger.with_name(trigger.name + ".frozen").write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGSTOP)

    StoreBase.serialize = frozen  # type: ignore[method-assign]


def stick_the_collect_stage(marker: Path) -> None:
    import time

    from agent.sources import Collector

    def stuck(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        marker.touch()
        time.sleep(600)

    Collector.collect = stuck  # type: ignore[method-assign]


def main() -> None:
    if os.environ.get("FAULT_CLOCK_FILE"):
        skew_the_wall_clock(Path(os.environ["FAULT_CLOCK_FILE"]))
    if os.environ.get("FAULT_FREEZE_FILE"):
        freeze_in_the_leases_lock(Path(os.environ["FAULT_FREEZE_FILE"]))
    if os.environ.get("FAULT_STUCK_COLLECT"):
        stick_the_collect_stage(Path(os.environ["FAULT_STUCK_COLLECT"]))
    from agent.cli import cli

    cli.main(args=sys.argv[1:], prog_name="aiops")


if __name__ == "__main__":
    main()
