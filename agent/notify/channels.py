"""Channels: one class per kind of endpoint, each turning a stored payload into one delivery.

``send(item, timeout_s)`` returns when the endpoint accepted the notification and raises
``DeliveryError`` otherwise. Error texts are built from facts (status code, kind of network
failure), never from the URL or the exception text of the HTTP library, which would carry
webhook tokens and routing keys into logs and the outbox.
"""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

import requests

from agent import __version__
from agent.config.notify import AlertmanagerChannel, EmailChannel, PagerDutyChannel, SlackChannel, WebhookChannel
from agent.errors import AiopsError
from agent.incidents.summary import clean
from agent.notify.messages import headline
from agent.store.outbox import OutboxItem

USER_AGENT = f"aiops-agent/{__version__}"
LIFETIMES = 4  # an Alertmanager alert's endsAt: this many resends (or cycles) ahead


class DeliveryError(AiopsError):
    """A channel did not accept a notification; ``retry_after_s`` is the endpoint's own hint."""

    def __init__(self, channel: str, problem: str, *, retry_after_s: float | None = None) -> None:
        self.channel = channel
        self.problem = problem
        self.retry_after_s = retry_after_s
        super().__init__(f"channel {channel}: {problem}")


class Channel(Protocol):
    name: str
    timeout_s: float
    paging: bool

    def accepts(self, event: str) -> bool: ...

    def send(self, item: OutboxItem, timeout_s: float) -> None: ...


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _post(channel: str, url: str, body: Mapping[str, Any] | Sequence[Mapping[str, Any]], timeout_s: float,
          headers: Mapping[str, str] | None = None) -> requests.Response:
    """POST JSON; a 2xx answer is returned, anything else raises ``DeliveryError``."""
    try:
        response = requests.post(url, data=json.dumps(body), timeout=timeout_s, allow_redirects=False,
                                 headers={"Content-Type": "application/json", "User-Agent": USER_AGENT,
                                          **dict(headers or {})})
    except requests.Timeout:
        raise DeliveryError(channel, f"no answer within {timeout_s:g}s") from None
    except requests.ConnectionError as exc:
        refused = "refused" in repr(exc).lower()
        raise DeliveryError(channel, "connection refused" if refused else "cannot connect") from None
    except requests.RequestException as exc:
        raise DeliveryError(channel, f"request failed ({type(exc).__name__})") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(channel, f"answered HTTP {response.status_code}", retry_after_s=_retry_after(response))
    return response


class _Base:
    """What every channel keeps from its config; each accepts every event unless it says otherwise."""

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self.timeout_s = config.timeout
        self.paging = config.paging

    def accepts(self, event: str) -> bool:
        return True


class Webhook(_Base):
    """The generic webhook: the stored payload as JSON, with the outbox's dedup key as
    ``Idempotency-Key`` so a receiver can drop a repeat after a crash mid-delivery."""

    config: WebhookChannel

    def send(self, item: OutboxItem, timeout_s: float) -> None:
        body = {**dict(item.payload), "dedup_key": item.dedup_key}
        _post(self.name, self.config.webhook_url.get_secret_value(), body, timeout_s,
              {**self.config.headers, "Idempotency-Key": item.dedup_key})


def slack_escape(text: str) -> str:
    """Slack's mrkdwn escapes: ``&``, ``<`` and ``>`` (so no link, mention or @channel sneaks in)."""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Slack(_Base):
    """A Slack-compatible incoming webhook: ``text`` (the fallback) and one section block."""

    config: SlackChannel

    def body(self, item: OutboxItem) -> dict[str, Any]:
        p = item.payload
        line = slack_escape(headline(p))
        link = f" <{p['url']}|incident page>" if p.get("url") else ""
        labels = ", ".join(f"{k}={v}" for k, v in sorted(dict(p.get("labels") or {}).items()))
        detail = slack_escape(str(p.get("event_message") or ""))
        # Labels in a code span: Slack neither formats nor links inside one.
        code = slack_escape(labels).replace("`", "'")
        text = f"*{line}*{link}\n{detail}" + (f"\n`{code}`" if labels else "")
        body: dict[str, Any] = {"text": f"{line}{link}", "username": self.config.username,
                                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
        if self.config.channel:
            body["channel"] = self.config.channel
        return body

    def send(self, item: OutboxItem, timeout_s: float) -> None:
        _post(self.name, self.config.webhook_url.get_secret_value(), self.body(item), timeout_s)


PAGERDUTY_ACTIONS = {"opened": "trigger", "reopened": "trigger", "escalated": "trigger",
                     "acknowledged": "acknowledge", "resolved": "resolve"}


class PagerDuty(_Base):
    """PagerDuty Events API v2. The incident id is the ``dedup_key``, so trigger, acknowledge and
    resolve act on one PagerDuty incident, and a repeated trigger is merged by PagerDuty."""

    config: PagerDutyChannel

    def accepts(self, event: str) -> bool:
        return event in PAGERDUTY_ACTIONS

    def body(self, item: OutboxItem) -> dict[str, Any]:
        p = item.payload
        action = PAGERDUTY_ACTIONS[item.event]
        body: dict[str, Any] = {"routing_key": self.config.routing_key.get_secret_value(),
                                "event_action": action, "dedup_key": str(p["incident_id"])}
        if action == "trigger":
            labels = dict(p.get("labels") or {})
            body["payload"] = {
                "summary": clean(p["title"])[:1024],
                "source": labels.get("instance") or labels.get("host") or labels.get("service") or "aiops-agent",
                "severity": p["severity"] if p["severity"] in ("critical", "warning", "info") else "error",
                "timestamp": p["event_at"],
                "component": labels.get("service"),
                "custom_details": {"labels": labels, "event": p["event_message"], "root_cause": p.get("root_cause")},
            }
            body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
            body["client"] = "aiops-agent"
            if p.get("url"):
                body["client_url"] = p["url"]
                body["links"] = [{"href": p["url"], "text": "incident page"}]
        return body

    def send(self, item: OutboxItem, timeout_s: float) -> None:
        response = _post(self.name, self.config.url, self.body(item), timeout_s)
        try:
            answer = response.json()
        except ValueError:
            raise DeliveryError(self.name, f"answered HTTP {response.status_code} without JSON") from None
        if answer.get("status") != "success":
            raise DeliveryError(self.name, f"answered status {clean(answer.get('status'))!r}")


class Email(_Base):
    """A plain-text mail over SMTP (STARTTLS or TLS when configured), one per notification."""

    config: EmailChannel

    def message(self, item: OutboxItem) -> EmailMessage:
        p = item.payload
        msg = EmailMessage()
        msg["Subject"] = headline(p)[:250]
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = formatdate(usegmt=True)
        # The same Message-ID on a retry lets a mail system drop the copy.
        msg["Message-ID"] = f"<{item.dedup_key.replace(':', '.')}.{item.created_at.timestamp():.0f}@aiops-agent>"
        link = f"Incident page: {p['url']}\n\n" if p.get("url") else ""
        msg.set_content(f"{headline(p)}\n{clean(p.get('event_message'))}\n\n{link}{p.get('text', '')}")
        return msg

    def send(self, item: OutboxItem, timeout_s: float) -> None:
        c = self.config
        try:
            if c.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(c.host, c.port, timeout=timeout_s,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=timeout_s)
            with smtp:
                if c.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if c.username and c.password:
                    smtp.login(c.username, c.password.get_secret_value())
                smtp.send_message(self.message(item))
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(self.name, f"SMTP server answered {exc.smtp_code}") from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError(self.name, "SMTP server refused every recipient") from None
        except TimeoutError:
            raise DeliveryError(self.name, f"no answer within {timeout_s:g}s") from None
        except ConnectionRefusedError:
            raise DeliveryError(self.name, "connection refused") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(self.name, f"SMTP failed ({type(exc).__name__})") from None


class Alertmanager(_Base):
    """Posts alerts to one Alertmanager. Nothing of the outbox is its to send; ``send`` takes the
    test message of ``aiops notify test`` as a test alert."""

    config: AlertmanagerChannel

    def accepts(self, event: str) -> bool:
        return False

    def post(self, alerts: Sequence[Mapping[str, Any]], timeout_s: float) -> None:
        c = self.config
        headers: dict[str, str] = {}
        if c.bearer_token is not None:
            headers["Authorization"] = f"Bearer {c.bearer_token.get_secret_value()}"
        elif c.username:
            secret = f"{c.username}:{c.password.get_secret_value() if c.password else ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(secret.encode("utf-8")).decode("ascii")
        _post(self.name, c.url.rstrip("/") + "/api/v2/alerts", list(alerts), timeout_s, headers)

    def send(self, item: OutboxItem, timeout_s: float) -> None:
        p = item.payload
        now = item.created_at
        labels = {**self.config.labels, "alertname": self.config.alertname,
                  "aiops_incident": str(p["incident_id"]), "severity": str(p["severity"])}
        ends = now if item.event == "resolved" else now + timedelta(seconds=LIFETIMES * self.config.resend)
        self.post([{"labels": labels, "annotations": {"summary": clean(p["title"])}, "startsAt": rfc3339(now),
                    "endsAt": rfc3339(ends), "generatorURL": str(p.get("url") or "")}], timeout_s)


def rfc3339(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_channels(configs: Mapping[str, Any]) -> dict[str, Channel]:
    kinds = {"webhook": Webhook, "slack": Slack, "pagerduty": PagerDuty, "email": Email, "alertmanager": Alertmanager}
    return {name: kinds[cfg.type](name, cfg) for name, cfg in configs.items()}
