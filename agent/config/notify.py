"""Config section `notify`: where notifications go (channels) and which go where (routes)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.config.types import Seconds, Section, check_http_url

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

EVENT_KINDS = ("opened", "acknowledged", "resolved", "reopened", "escalated", "remediation")
"""Timeline events that notify; ``remediation`` stands for every ``remediation…`` outcome."""

SEVERITIES = ("info", "warning", "critical")


class _Channel(Section):
    """What every channel has: a timeout per delivery and whether it pages a person."""

    timeout: Seconds = Field(default=5.0, gt=0)
    # A paging channel stays quiet for silenced incidents and flapping reopens.
    paging: bool = False


class WebhookChannel(_Channel):
    """POST a JSON document to a URL (the generic webhook)."""

    type: Literal["webhook"]
    webhook_url: SecretStr
    headers: dict[str, str] = {}


class SlackChannel(_Channel):
    """POST to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    type: Literal["slack"]
    webhook_url: SecretStr
    channel: str | None = None
    username: str = "aiops-agent"


class PagerDutyChannel(_Channel):
    """PagerDuty Events API v2: trigger, acknowledge, resolve; the incident id is the dedup_key."""

    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    paging: bool = True

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        return check_http_url(value, instead="PagerDuty authenticates the routing_key: give it as routing_key_file "
                                             "or routing_key: ${ENV_VAR}")


class EmailChannel(_Channel):
    """Send a plain-text mail over SMTP."""

    type: Literal["email"]
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    # none: plain SMTP; starttls: upgrade after EHLO; ssl: TLS from the first byte (port 465).
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from", default="aiops-agent@localhost")
    to: list[str] = Field(min_length=1)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or any(c in address for c in "\r\n<>, "):
                raise ValueError(f"expected mail addresses like ops@example.com, found {address!r}")
        return value


class AlertmanagerChannel(_Channel):
    """Keep each incident as an alert in Alertmanager (its API v2), so the routes, inhibitions and
    silences a team keeps there apply: sent within the cycle an incident opens, re-sent every
    ``resend`` while it is open (its ``endsAt`` four resends ahead, so Alertmanager resolves it
    by itself if the agent stops), resolved with ``endsAt`` the cycle it resolves."""

    type: Literal["alertmanager"]
    url: str
    # The alertname label of every incident's alert; ``labels`` are added to each (a team, a tenant).
    alertname: str = "AiopsIncident"
    labels: dict[str, str] = {}
    resend: Seconds = Field(default=60.0, gt=0)
    # For an Alertmanager behind a proxy that asks for credentials: a bearer token, or basic auth.
    bearer_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    # Alertmanager applies its own silences: the agent's silences hold nothing back from it.
    paging: Literal[False] = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http:// or https:// URL, found {value!r}")
        return value

    @field_validator("alertname")
    @classmethod
    def _label_value(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected an alert name, found an empty string")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> "AlertmanagerChannel":
        if self.bearer_token is not None and self.username:
            raise ValueError("expected either bearer_token or username/password, found both")
        return self

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", name) or name in ("alertname", "severity", "aiops_incident"):
                raise ValueError(f"expected label names other than alertname, severity and aiops_incident, made of "
                                 f"letters, digits and _, found {name!r}")
        return value


Channel = Annotated[
    WebhookChannel | SlackChannel | PagerDutyChannel | EmailChannel | AlertmanagerChannel,
    Field(discriminator="type")]


class Route(Section):
    """Send matching incident events to ``channels``. Every route that matches adds its channels,
    unless an earlier matching route said ``stop: true``."""

    channels: list[str] = Field(min_length=1)
    # The lowest severity this route takes (info < warning < critical).
    min_severity: Literal["info", "warning", "critical"] = "info"
    # Exact label matches on the incident's labels; "*" matches any value of a present label.
    labels: dict[str, str] = {}
    events: list[str] = list(EVENT_KINDS)
    stop: bool = False

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        for kind in value:
            if kind not in EVENT_KINDS:
                raise ValueError(f"expected events among {', '.join(EVENT_KINDS)}, found {kind!r}")
        return value


GRAPH_LINK = "{url}/graph?g0.expr={expr}&g0.tab=0&g0.range_input={range}&g0.end_input={end}"
_PLACEHOLDER = re.compile(r"{([^{}]*)}")


class NotifyConfig(Section):
    """Channels by name, routes in order, and the outbox's retry policy."""

    enabled: bool = True
    # Prometheus UI for graph links in summaries and messages; unset: the Prometheus source's URL
    # when sources.kind is prometheus, else no links.
    prometheus_url: str | None = None
    # The graph link of a signal: {url} is the URL above, {expr} the signal's PromQL selector,
    # {range} the span shown (like 3h), {end} its end (all URL-encoded). The default opens
    # Prometheus' graph page; for VictoriaMetrics use
    # "{url}/vmui/#/?g0.expr={expr}&g0.range_input={range}&g0.end_input={end}".
    graph_link: str = GRAPH_LINK
    channels: dict[str, Channel] = {}
    routes: list[Route] = []
    # Retries: the wait doubles from retry_initial up to retry_max (with jitter of ±20 %).
    retry_initial: Seconds = Field(default=30.0, gt=0)
    retry_max: Seconds = Field(default=3600.0, gt=0)
    # A notification still undelivered after this long is marked expired (counted, logged).
    give_up_after: Seconds = Field(default=86400.0, gt=0)
    # The most time one cycle spends delivering; what is left waits for the next cycle.
    cycle_budget: Seconds = Field(default=10.0, gt=0)
    # At most this many deliveries per cycle.
    batch: int = Field(default=100, ge=1)

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"expected channel names of lower-case letters, digits, - and _, found {name!r}")
        return value

    @field_validator("graph_link")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = sorted(set(_PLACEHOLDER.findall(value)) - {"url", "expr", "range", "end"})
        if unknown or "{expr}" not in value:
            raise ValueError(f"expected a link with {{expr}} and only {{url}}, {{expr}}, {{range}} and {{end}}, "
                             f"found {value!r}")
        return value

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # Only the base of graph links: everyone who reads a page or a message would read the password.
        return None if value is None else check_http_url(
            value, instead="graph links are read by everyone who gets a message: give the URL people open")

    @model_validator(mode="after")
    def _routes_name_channels(self) -> "NotifyConfig":
        for i, route in enumerate(self.routes):
            for name in route.channels:
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none defined"
                    raise ValueError(f"expected routes[{i}].channels to name a channel ({known}), found {name!r}")
        return self


__all__ = ["AlertmanagerChannel", "Channel", "EVENT_KINDS", "EmailChannel", "NotifyConfig", "PagerDutyChannel", "Route", "SEVERITIES",
           "SlackChannel", "WebhookChannel"]
