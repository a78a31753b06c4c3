"""``aiops audit …`` and ``aiops report …``."""

from __future__ import annotations

import sys

import click

from agent.cli.common import AiopsGroup, current_clock, format_option, output_option, with_context
from agent.context import Context
from agent.report.period import Period, period_since, zone


def _period(since: str, until: str | None) -> Period:
    try:
        return period_since(since, now=current_clock()(), until=until)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'/'--until'") from None


def _tz(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        zone(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


since_option = click.option("--since", default="30d", show_default=True,
                            help="Start of the period: a duration back from now (30d, 12h, 2w) or a date.")
until_option = click.option("--until", default=None, help="End of the period (default: now); same forms as --since.")


@click.group(cls=AiopsGroup)
def audit() -> None:
    """The append-only, hash-chained audit log."""


@audit.command("verify")
@with_context
def audit_verify(ctx: Context) -> None:
    """Check the audit chain: exit 0 when intact, else print the first broken entry and exit 1.

    Example: aiops audit verify --config /etc/aiops-agent/agent.yaml
    """
    broken = ctx.store.verify_audit_chain()
    total = ctx.store.count_audit()
    if broken is None:
        first, _ = ctx.store.audit_anchor()
        tail = f" (entries up to {first} were pruned by retention)" if first else ""
        click.echo(f"audit chain intact: {total} entries{tail}")
        return
    click.echo(f"audit chain broken at entry {broken.id}: {broken.reason}", err=True)
    raise SystemExit(1)


@audit.command("export")
@since_option
@until_option
@format_option("jsonl", "csv")
@output_option
@with_context
def audit_export(ctx: Context, since: str, until: str | None, fmt: str) -> None:
    """Write audit entries of a period (who did what, when, and why) as JSON lines or CSV.

    Example: aiops audit export --since 7d --format csv --output audit.csv
    """
    from agent.report.audit import export

    export(ctx.store, _period(since, until), fmt, sys.stdout)


@click.group(cls=AiopsGroup)
def report() -> None:
    """MTTR figures, the weekly HTML report and a model's governance report."""


@report.command("mttr")
@since_option
@until_option
@click.option("--by", type=click.Choice(["service", "severity", "rule", "detector", "model", "week"]), default=None,
              help="One row per group (week: weeks starting Monday in --tz).")
@format_option("table", "csv", "json", "html")
@output_option
@click.option("--tz", default="UTC", show_default=True, callback=_tz, help="Time zone that names the weeks.")
@with_context
def report_mttr(ctx: Context, since: str, until: str | None, by: str | None, fmt: str, tz: str) -> None:
    """MTTD, MTTA and MTTR (count, mean, median, p90), the share auto-remediated, and MTTR with
    a verified remediation vs by hand; model incidents get their own row.

    Example: aiops report mttr --since 30d --by service --format table
    """
    from agent.report.mttr import mttr_report
    from agent.report.render import render

    period = _period(since, until)
    click.echo(render(mttr_report(ctx.store, period, by=by, tz=tz, now=ctx.clock()), fmt), nl=False)


@report.command("html")
@since_option
@until_option
@output_option
@click.option("--tz", default="UTC", show_default=True, callback=_tz, help="Time zone that names the weeks.")
@with_context
def report_html(ctx: Context, since: str, until: str | None, tz: str) -> None:
    """Write the weekly review as one self-contained HTML page (plots embedded, no network).

    Example: aiops report html --since 30d --output weekly.html
    """
    from agent.report.weekly import weekly_report
    from remediations.trust import modes

    click.echo(weekly_report(ctx.store, _period(since, until), tz=tz, now=ctx.clock(),
                             modes=modes(ctx.config.remediation, ctx.store)), nl=False)


@report.command("model")
@click.argument("name")
@since_option
@until_option
@format_option("html", "json")
@output_option
@with_context
def report_model(ctx: Context, name: str, since: str, until: str | None, fmt: str) -> None:
    """One model's governance report: versions and who deployed them (gate overrides stand out),
    what served when, rollouts with their analysis, retrains with their gates, incidents and MTTR,
    the remediation ledger of those incidents, drift and latency per day, and the audit entries
    behind each.

    Example: aiops report model fraud --since 30d --output fraud.html
    """
    from agent.report.latency import latency_reader
    from agent.report.model import as_html, as_json, model_report
    from agent.rollouts.engine import model_config

    model_config(ctx, name)
    text = (as_html if fmt == "html" else as_json)(model_report(ctx.store, name, _period(since, until),
                                                                now=ctx.clock(), latency=latency_reader(ctx.config)))
    click.echo(text, nl=False)


commands: tuple[click.Command, ...] = (audit, report)
