"""The root of the config: one section per stage, each defined in its own module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from agent.config.detectors import DetectorsConfig
from agent.config.incidents import IncidentsConfig
from agent.config.models import ModelConfig, check_models
from agent.config.notify import NotifyConfig
from agent.config.remediation import RemediationConfig
from agent.config.retention import RetentionConfig
from agent.config.sources import SourcesConfig
from agent.config.store import StoreConfig
from agent.config.types import Bytes, ConfigPath, Seconds, Section

_SHARD = re.compile(r"^(\d+)/(\d+)$")


class AgentSection(Section):
    """How the daemon runs."""

    state_dir: ConfigPath = Path("/var/lib/aiops-agent")
    interval: Seconds = Field(default=60.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shard: str = "0/1"
    unhealthy_after: int = Field(default=3, ge=1)
    # /healthz fails when no cycle has finished for this long (the first one counted from the
    # start); unset: 3 intervals, at least 60 s.
    stale_after: Seconds | None = Field(default=None, gt=0)
    stop_timeout: Seconds = Field(default=10.0, gt=0)

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str) -> str:
        match = _SHARD.match(value)
        if not match or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
            raise ValueError(f"expected a shard as i/n with 0 <= i < n, found {value!r}")
        return value

    @property
    def stale_after_s(self) -> float:
        return self.stale_after if self.stale_after is not None else max(3 * self.interval, 60.0)

    @property
    def shard_index(self) -> tuple[int, int]:
        i, n = self.shard.split("/")
        return int(i), int(n)


class HttpSection(Section):
    """The HTTP app the daemon serves: /metrics, /healthz, /api/v1/…, incident pages."""

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = Field(default=9847, ge=0, le=65535)
    token: SecretStr | None = None
    public_url: str | None = None
    # A request's line and headers must arrive within header_timeout of the connection (or of the
    # first byte after the previous answer), its body within body_timeout; else it is closed.
    header_timeout: Seconds = Field(default=10.0, gt=0)
    body_timeout: Seconds = Field(default=60.0, gt=0)
    # Open connections at most (null: half the descriptor limit, at most 1024); past it the one
    # idle longest is closed.
    max_connections: int | None = Field(default=None, ge=1)
    max_body: Bytes = 1024 * 1024
    max_webhook_body: Bytes = 64 * 1024 * 1024
    # Host names accepted besides loopback names, the listen address, public_url's host and IP
    # addresses ("*": any).
    allowed_hosts: list[str] = []

    @field_validator("token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.listen}:{self.port}").rstrip("/")


class AgentConfig(Section):
    agent: AgentSection = AgentSection()
    http: HttpSection = HttpSection()
    sources: SourcesConfig = SourcesConfig()
    detectors: DetectorsConfig = DetectorsConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    remediation: RemediationConfig = RemediationConfig()
    notify: NotifyConfig = NotifyConfig()
    retention: RetentionConfig = RetentionConfig()
    store: StoreConfig = StoreConfig()
    models: list[ModelConfig] = []

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[ModelConfig]) -> list[ModelConfig]:
        return check_models(value)

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)

    def secrets(self) -> list[str]:
        """Every secret value the config holds (tokens, passwords, keys): what logging scrubs."""
        return list(_secrets(self))


def _secrets(node: Any) -> Iterator[str]:
    if isinstance(node, SecretStr):
        yield node.get_secret_value()
    elif isinstance(node, BaseModel):
        for key in type(node).model_fields:
            yield from _secrets(getattr(node, key))
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _secrets(item)
    elif isinstance(node, dict):
        for item in node.values():
            yield from _secrets(item)
