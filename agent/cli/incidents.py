"""The correlate stage's commands (``agent.incidents``); ``agent.cli.main`` adds every command listed in
``commands``.

``aiops incidents list|show|ack|resolve``, ``aiops silence add|list|expire``, ``aiops change add``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

from agent.cli.common import AiopsGroup, When, cli_actor, format_option, output_option, with_context
from agent.config.types import parse_duration
from agent.flow.incidents import IncidentStatus
from agent.incidents.catalog import catalog_of
from agent.incidents.formats import FORMATS, render
from agent.incidents.history import history_of
from agent.incidents.serialize import change_dict, incident_dict, silence_dict
from agent.incidents.summary import clean, title_of


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}Z" if value else "-"


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO-8601 time such as 2026-01-01T12:00:00Z, found {value!r}",
                                 param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _parse_labels(value: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, text = part.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected name=value pairs separated by commas, found {part!r}",
                                     param_hint="--labels")
        labels[name.strip()] = text.strip()
    return labels


# -- incidents ------------------------------------------------------------------------------

@click.group("incidents", cls=AiopsGroup)
def incidents_group() -> None:
    """List, show, acknowledge and resolve incidents.

    Example: aiops incidents list --status open
    """


@incidents_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in IncidentStatus]), default=None,
              help="Only incidents in this state.")
@click.option("--open", "only_open", is_flag=True, help="Only incidents not yet resolved.")
@click.option("--since", type=When(), default=None,
              help="Only incidents started since then (24h back from now, or a date), or still open.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def list_command(ctx: Any, status: str | None, only_open: bool, since: datetime | None, limit: int,
                 fmt: str) -> None:
    """List incidents, newest first.

    Example: aiops incidents list --open --since 24h --limit 20
    """
    wanted: Any = status
    if only_open:
        wanted = [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.REMEDIATING]
    incidents = ctx.store.list_incidents(status=wanted, since=since, limit=limit)
    lookback = ctx.config.incidents.changes_lookback
    titles = {i.id: title_of(ctx.store, i, lookback_s=lookback) for i in incidents}  # as `show` gives them
    if fmt == "json":
        click.echo(json.dumps([{**incident_dict(i, signals=False), "title": titles[i.id]} for i in incidents],
                              indent=2))
        return
    if not incidents:
        click.echo("no incidents")
        return
    for incident in incidents:
        flags = " flapping" if incident.flapping else ""
        click.echo(f"#{incident.id:<5} {incident.status.value:<12} {incident.severity.value:<8} "
                   f"{_when(incident.started_at)}  {len(incident.signals):>3} signals{flags}  {clean(titles[incident.id])}")


@incidents_group.command("show")
@click.argument("incident_id", type=int)
@format_option(*FORMATS)
@output_option
@with_context
def show_command(ctx: Any, incident_id: int, fmt: str) -> None:
    """Show one incident: what, where, signals, root-cause guess, suspect changes, timeline.

    Example: aiops incidents show 12 --format markdown
    """
    click.echo(render(ctx.store, incident_id, fmt, base_url=ctx.config.http.base_url,
                      catalog=catalog_of(ctx.config), lookback_s=ctx.config.incidents.changes_lookback,
                      history=history_of(ctx.config, ctx.store)))


def _transition(ctx: Any, incident_id: int, to: IncidentStatus, reason: str) -> None:
    incident = ctx.store.transition_incident(incident_id, to, actor=cli_actor(), reason=reason, now=ctx.clock(),
                                             resolution="manual" if to is IncidentStatus.RESOLVED else None)
    click.echo(f"incident #{incident.id} is now {incident.status.value}")


@incidents_group.command("ack")
@click.argument("incident_id", type=int)
@click.option("--reason", default="", help="Why, for the timeline and the audit log.")
@with_context
def ack_command(ctx: Any, incident_id: int, reason: str) -> None:
    """Acknowledge an incident (someone is on it).

    Example: aiops incidents ack 12 --reason "looking at the db"
    """
    _transition(ctx, incident_id, IncidentStatus.ACKNOWLEDGED, reason)


@incidents_group.command("resolve")
@click.argument("incident_id", type=int)
@click.option("--reason", default="", help="Why, for the timeline and the audit log.")
@with_context
def resolve_command(ctx: Any, incident_id: int, reason: str) -> None:
    """Resolve an incident by hand.

    Example: aiops incidents resolve 12 --reason "restarted the pool"
    """
    _transition(ctx, incident_id, IncidentStatus.RESOLVED, reason)


# -- silences -------------------------------------------------------------------------------

@click.group("silence", cls=AiopsGroup)
def silence_group() -> None:
    """Silence paging for incidents whose labels match (they are still recorded).

    Example: aiops silence add -m service=api --duration 2h --reason "planned failover"
    """


@silence_group.command("add")
@click.option("-m", "--match", "matchers", multiple=True, required=True,
              help="Label matcher: name=value, name!=value, name=~regex or name!~regex (repeatable; all must match).")
@click.option("--duration", default=None, help="How long, e.g. 30m or 2h (or give --ends).")
@click.option("--starts", default=None, help="Start time, ISO-8601 (default: now).")
@click.option("--ends", default=None, help="End time, ISO-8601.")
@click.option("--reason", required=True, help="Why; shown on the incidents it covers.")
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def silence_add(ctx: Any, matchers: tuple[str, ...], duration: str | None, starts: str | None, ends: str | None,
                reason: str, fmt: str) -> None:
    """Add a silence.

    Example: aiops silence add -m service=api -m env=~prod.* --duration 2h --reason "db migration"
    """
    from agent.incidents.silences import create_silence

    try:
        duration_s = parse_duration(duration) if duration is not None else None
        silence = create_silence(ctx.store, list(matchers), reason=reason, actor=cli_actor(), now=ctx.clock(),
                                 starts_at=_parse_time(starts, "--starts"), ends_at=_parse_time(ends, "--ends"),
                                 duration_s=duration_s)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(silence_dict(silence)))
    else:
        click.echo(f"silence #{silence.id} until {_when(silence.ends_at)}: "
                   f"{' '.join(str(m) for m in silence.matchers)}")


@silence_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also expired and future silences.")
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def silence_list(ctx: Any, show_all: bool, fmt: str) -> None:
    """List active silences.

    Example: aiops silence list --all
    """
    now = ctx.clock()
    silences = ctx.store.list_silences(active_at=None if show_all else now)
    if fmt == "json":
        click.echo(json.dumps([silence_dict(s) for s in silences], indent=2))
        return
    if not silences:
        click.echo("no silences")
        return
    for s in silences:
        state = "active" if s.active_at(now) else ("expired" if (s.expired_at or s.ends_at) <= now else "pending")
        click.echo(f"#{s.id:<4} {state:<8} {_when(s.starts_at)} → {_when(s.expired_at or s.ends_at)}  "
                   f"{' '.join(str(m) for m in s.matchers)}  by {s.created_by}: {s.reason}")


@silence_group.command("expire")
@click.argument("silence_id", type=int)
@with_context
def silence_expire(ctx: Any, silence_id: int) -> None:
    """End a silence now.

    Example: aiops silence expire 3
    """
    silence = ctx.store.expire_silence(silence_id, actor=cli_actor(), now=ctx.clock())
    click.echo(f"silence #{silence.id} expired at {_when(silence.expired_at)}")


# -- changes ----------------------------------------------------------------------------------

@click.group("change", cls=AiopsGroup)
def change_group() -> None:
    """Record deploys, model rollouts and config changes (suspects for later incidents).

    Example: aiops change add --kind deploy --labels service=api,version=v12 "api v12 rollout"
    """


@change_group.command("add")
@click.option("--kind", required=True, help="deploy, model_rollout, config, … (free text).")
@click.option("--labels", default="", help="name=value pairs, comma-separated: service=api,version=v12")
@click.option("--at", "at", type=When(), default=None,
              help="When it happened: 10m back from now, or a date (default: now).")
@format_option("text", "json", json_alias=True)
@output_option
@click.argument("description")
@with_context
def change_add(ctx: Any, kind: str, labels: str, at: datetime | None, fmt: str, description: str) -> None:
    """Record a change.

    Example: aiops change add --kind deploy --labels service=api,version=v12 "api v12"
    """
    now = ctx.clock()
    change = ctx.store.add_change(ts=at or now, kind=kind, labels=_parse_labels(labels),
                                  description=description, actor=cli_actor(), now=now)
    if fmt == "json":
        click.echo(json.dumps(change_dict(change)))
    else:
        click.echo(f"change #{change.id} recorded: {change.kind} at {_when(change.ts)}")


@change_group.command("list")
@click.option("--since", type=When(), default="7d", show_default=True,
              help="Changes since then: 7d back from now, or a date.")
@click.option("--kind", default=None, help="Only changes of this kind (deploy, model_rollout, …).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@format_option("text", "json")
@output_option
@with_context
def change_list(ctx: Any, since: datetime, kind: str | None, limit: int, fmt: str) -> None:
    """List recorded changes, newest first: the suspects an incident's summary names.

    Example: aiops change list --since 24h --kind deploy
    """
    changes = [c for c in ctx.store.list_changes(since=since, limit=None) if kind is None or c.kind == kind][:limit]
    if fmt == "json":
        click.echo(json.dumps([change_dict(c) for c in changes], indent=2))
        return
    for change in changes:
        labels = ",".join(f"{k}={v}" for k, v in sorted(change.labels.items()))
        click.echo(clean(f"#{change.id:<5} {_when(change.ts)}  {change.kind:<14} {labels:<32} {change.description} "
                         f"({change.actor})"))
    if not changes:
        click.echo(f"no changes since {_when(since)}")


commands: tuple[click.Command, ...] = (incidents_group, silence_group, change_group)
