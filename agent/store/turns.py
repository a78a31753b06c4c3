"""Writers of one process take the SQLite file's write lock in the order they asked for it.

SQLite lets a connection that finds the file locked poll for it (its busy handler sleeps between
tries, up to 100 ms), so threads of one agent that write back to back (webhook bodies, the cycle,
the lease renewals) do not take turns: whichever retries at the right moment wins, and a renewal
can lose for ten seconds on end. Before ``BEGIN IMMEDIATE`` each thread of the process waits here
instead, first come first served; SQLite's own lock still orders this process against others.
"""

from __future__ import annotations

import threading
from collections import deque


class Turns:
    """A lock granted in the order it was asked for, with a timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout_s: float) -> bool:
        with self._lock:
            if not self._held and not self._waiting:
                self._held = True
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout_s):
            return True
        with self._lock:
            if turn.is_set():  # granted just as the wait ran out: it is ours
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # handed over: still held, by the next in line
            else:
                self._held = False
