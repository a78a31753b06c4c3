"""Config section ``sources``: where samples come from (Prometheus API, direct scraping, CSV files)."""

from __future__ import annotations

import base64
import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.config.types import Bytes, ConfigPath, Seconds, Section, check_http_url

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"expected a name of letters, digits, _ . : - (starting with a letter or _), found {value!r}")
    return value


_ENV_SECRET = "${ENV_VAR}"


class QueryConfig(Section):
    """One named PromQL query, evaluated with ``query_range``."""

    name: str
    expr: str
    step: Seconds | None = Field(default=None, gt=0)
    kind: Literal["gauge", "rate", "quantile", "bucket"] = "gauge"

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("expr")
    @classmethod
    def _expr_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a PromQL expression, found an empty string")
        return value


class _Credentials(Section):
    """Basic auth or a bearer token, for a server that asks (never a password in its URL)."""

    bearer_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("bearer_token", "password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_auth(self) -> "_Credentials":
        if self.bearer_token is not None and self.username:
            raise ValueError("expected either bearer_token or username/password, found both")
        return self

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header these credentials make (none without)."""
        if self.bearer_token is not None:
            return {"Authorization": f"Bearer {self.bearer_token.get_secret_value()}"}
        if self.username:
            password = self.password.get_secret_value() if self.password else ""
            token = base64.b64encode(f"{self.username}:{password}".encode()).decode("ascii")
            return {"Authorization": f"Basic {token}"}
        return {}


class PrometheusSourceConfig(_Credentials):
    """Any server with the Prometheus HTTP API: Prometheus, Thanos, Mimir, VictoriaMetrics."""

    url: str = "http://127.0.0.1:9090"
    verify_tls: bool = True
    ca_file: ConfigPath | None = None
    timeout: Seconds = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff: Seconds = Field(default=0.5, ge=0)
    step: Seconds = Field(default=60.0, gt=0)
    max_points_per_request: int = Field(default=11_000, ge=2, le=11_000)
    # Plain selectors read raw samples with /api/v1/read (auto: while the server offers it).
    remote_read: Literal["auto", "on", "off"] = "auto"
    # The server's --query.lookback-delta: remote-read samples are placed on the grid as query_range would.
    lookback_delta: Seconds = Field(default=300.0, gt=0)
    queries: list[QueryConfig] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return check_http_url(value, instead="give sources.prometheus.username, and password_file or "
                                             f"password: {_ENV_SECRET}")

    @model_validator(mode="after")
    def _unique_queries(self) -> "PrometheusSourceConfig":
        names = [q.name for q in self.queries]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"expected unique query names, found {', '.join(dupes)} more than once")
        return self


class TargetConfig(_Credentials):
    """One exposition-format endpoint (node_exporter, an application's /metrics); behind
    authentication (node_exporter's web config), with basic auth or a bearer token."""

    name: str
    url: str
    # A target expected to be absent on some hosts (node_exporter): its absence is logged at info.
    optional: bool = False
    # As Prometheus' honor_labels: the exporter's own job and instance labels win over the ones the
    # scrape adds (federation, Pushgateway). Off: a clashing scraped label becomes exported_<name>.
    honor_labels: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return check_http_url(value, instead="give the target's username, and password_file or "
                                             f"password: {_ENV_SECRET}")


def _default_targets() -> list[TargetConfig]:
    return [TargetConfig(name="node", url="http://127.0.0.1:9100/metrics", optional=True)]


class ScrapeSourceConfig(Section):
    """Direct scraping; the history lives in the agent's store."""

    self_metrics: bool = True
    targets: list[TargetConfig] = Field(default_factory=_default_targets)
    # Connecting, and each wait for more bytes; ``deadline`` bounds one target's whole scrape
    # (a body trickled a byte at a time included) and ``max_body`` its size.
    timeout: Seconds = Field(default=5.0, gt=0)
    deadline: Seconds = Field(default=10.0, gt=0)
    max_body: Bytes = Field(default=16 * 2**20, ge=1024)
    retention: Seconds = Field(default=8 * 86400.0, gt=0)
    quantiles: list[float] = Field(default_factory=lambda: [0.5, 0.95, 0.99])
    metrics: list[str] = Field(default_factory=list)
    prune_batch: int = Field(default=20_000, ge=100)

    @field_validator("quantiles")
    @classmethod
    def _check_quantiles(cls, value: list[float]) -> list[float]:
        bad = [q for q in value if not 0 < q < 1]
        if bad:
            raise ValueError(f"expected quantiles between 0 and 1 (exclusive), found {bad[0]!r}")
        return value

    @field_validator("metrics")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"expected a regular expression, found {pattern!r} ({exc})") from None
        return value

    @model_validator(mode="after")
    def _unique_targets(self) -> "ScrapeSourceConfig":
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1} | ({"aiops"} & set(names) if self.self_metrics else set()))
        if dupes:
            raise ValueError(f"expected unique target names (aiops is taken by self_metrics), found {', '.join(dupes)} twice")
        return self


class FileSourceConfig(Section):
    """CSV replay: NAB's ``timestamp,value`` files (series named after the file) or wide CSVs."""

    paths: list[ConfigPath] = Field(default_factory=list)
    timestamp_column: str = "timestamp"
    metric: str = "replay"


class SourcesConfig(Section):
    """Which source feeds the cycle, how much each cycle fetches, and limits."""

    kind: Literal["scrape", "prometheus", "file"] = "scrape"
    window: Seconds = Field(default=900.0, gt=0)
    catchup_max: Seconds = Field(default=6 * 3600.0, gt=0)
    series_limit: int = Field(default=10_000, ge=1)
    prometheus: PrometheusSourceConfig = PrometheusSourceConfig()
    scrape: ScrapeSourceConfig = ScrapeSourceConfig()
    file: FileSourceConfig = FileSourceConfig()

    @model_validator(mode="after")
    def _kind_is_configured(self) -> "SourcesConfig":
        if self.kind == "prometheus" and not self.prometheus.queries:
            raise ValueError("expected at least one query in sources.prometheus.queries when kind is prometheus, found none")
        if self.kind == "file" and not self.file.paths:
            raise ValueError("expected at least one path in sources.file.paths when kind is file, found none")
        return self


__all__ = ["FileSourceConfig", "PrometheusSourceConfig", "QueryConfig", "ScrapeSourceConfig", "SourcesConfig",
           "TargetConfig"]
