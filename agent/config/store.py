"""Config section `store`: where the agent keeps everything that must last."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from pydantic import SecretStr, ValidationInfo, field_validator

from agent.config.types import Seconds, Section

_EXPECTED = "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"


class StoreConfig(Section):
    """``url`` unset: the SQLite file ``aiops.db`` in ``agent.state_dir`` (the embedded default).
    ``sqlite:///PATH`` names another file (relative to the config file's directory);
    ``postgresql://USER@HOST:PORT/DATABASE`` a PostgreSQL database, whose password comes from
    ``password`` (``password_file``: a 0600 file, or ``${ENV}``), never from the URL in the file."""

    url: str | None = None
    password: SecretStr | None = None
    # Every PostgreSQL session starts with these (0: no limit). A lease is asked for with at
    # most a quarter interval of lock wait (agent.leases).
    lock_timeout: Seconds = 10.0
    statement_timeout: Seconds = 120.0
    idle_in_transaction_timeout: Seconds = 60.0
    connect_timeout: Seconds = 10.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0] if "://" in value else None
        try:
            url = sa.make_url(value) if scheme else None
        except (sa.exc.ArgumentError, ValueError):
            url = None
        if url is None or url.drivername not in ("sqlite", "postgresql", "postgresql+psycopg"):
            shown = f"{scheme}://…" if scheme else repr(value[:40])
            raise ValueError(f"{_EXPECTED}, found {shown}")
        if url.password is not None:
            raise ValueError("expected no password in the URL (give it as store.password_file or "
                             "store.password: ${ENV_VAR}), found one")
        if url.drivername == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ValueError(f"{_EXPECTED}, found a SQLite URL without a file")
            path = Path(url.database).expanduser()
            base = (info.context or {}).get("base_dir")
            if not path.is_absolute() and base is not None:
                path = Path(base) / path
            return f"sqlite:///{path}"
        if not url.database or not url.host:
            raise ValueError(f"{_EXPECTED}, found a PostgreSQL URL without a host or database")
        return value

    def password_value(self) -> str | None:
        return self.password.get_secret_value() if self.password is not None else None
