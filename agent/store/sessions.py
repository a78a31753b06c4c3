"""What every PostgreSQL session of the store is given: its own module, so that the PostgreSQL
backend (``agent.store.postgres``) and the store that loads it on demand do not import each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimits:
    """What every PostgreSQL session of the store is given, in seconds (0: no limit): how long a
    statement waits for a lock, how long one statement may run, how long a session may sit idle
    inside a transaction before the server ends it (a frozen agent then frees what it locked),
    and how long connecting may take."""

    lock_timeout_s: float = 0.0
    statement_timeout_s: float = 0.0
    idle_in_transaction_timeout_s: float = 0.0
    connect_timeout_s: float = 0.0

    def options(self) -> str:
        """libpq's ``options``: the server settings each new session starts with."""
        settings = {"lock_timeout": self.lock_timeout_s, "statement_timeout": self.statement_timeout_s,
                    "idle_in_transaction_session_timeout": self.idle_in_transaction_timeout_s}
        return " ".join(f"-c {name}={round(seconds * 1000)}" for name, seconds in settings.items())
