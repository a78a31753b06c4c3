"""Leases: which agent process works a shard, and which one runs the stages that act once for all.

Several agents can share one store: ``n`` shard agents (``agent.shard: i/n``), and two (or more)
per shard for high availability. Each agent holds, renews or waits for a lease named for its shard
(``shard:i/n``); one of them also holds ``leader``, under which the stages that must act once for
the whole store run (remediation, rollouts, notifications). A lease not renewed within its time to
live is free for the next agent that asks.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

LEADER = "leader"


def shard_lease(shard: str) -> str:
    """The lease name of a shard, ``i/n`` as the config writes it."""
    return f"shard:{shard}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """One lease as the store had it at ``read_at`` (the store's clock). ``waiter``: the last
    other agent refused it, at ``waited_at``: a holder that has seen none is alone on it."""

    name: str
    holder: str
    taken_at: datetime
    expires_at: datetime
    read_at: datetime
    waiter: str | None = None
    waited_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.expires_at > self.read_at

    def waited_within(self, seconds: float) -> bool:
        """Whether another agent asked for it within ``seconds`` before it was read."""
        return self.waited_at is not None and (self.read_at - self.waited_at).total_seconds() <= seconds


def holder_id(pid: int | None = None) -> str:
    """``host/pid:start``: the host tells agents of several machines apart, the process' start
    time (clock ticks since boot) a reused pid."""
    pid = pid or os.getpid()
    stat = Path(f"/proc/{pid}/stat").read_text()
    start = stat.rsplit(")", 1)[1].split()[19]
    return f"{socket.gethostname()}/{pid}:{start}"
