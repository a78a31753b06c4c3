"""``aiops replay``: the running config over a range of real history (``agent.replay``);
``agent.cli.main`` adds every command listed in ``commands``."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import click
import pandas as pd

from agent.cli.common import When, current_clock, format_option, output_option, with_config
from agent.config import AgentConfig

SOURCES = ("auto", "prometheus", "embedded")


@click.command("replay")
@with_config
@click.option("--since", "since", type=When(), default=None,
              help="Replay from this far back to now: 7d, 36h (or a time, as --from).")
@click.option("--from", "start", type=When(), default=None, help="Start of the range: an ISO time (UTC unless it says).")
@click.option("--to", "end", type=When(), default=None, help="End of the range (default: now).")
@click.option("--source", "source_kind", type=click.Choice(SOURCES), default="auto", show_default=True,
              help="History to read: the Prometheus source, or the embedded scrape history of the store "
                   "(read-only); auto: the configured source's.")
@click.option("--pages-per-day", type=click.FloatRange(min=0), default=None,
              help="Find the page budget that pages at most this many times a day over the range.")
@click.option("--known", "known_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Outages the team knows about (YAML or JSON: start, end, labels): recall and delay.")
@click.option("--exact", is_flag=True,
              help="Judge the rows before each refit the daemon would make first, as its cycles would "
                   "(the same incidents as the daemon; one detect call per refit, slower).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the throwaway store and progress live (default: a folder in the temp dir named "
                   "for this replay; a second run of a stopped replay resumes there).")
@click.option("--keep-work", is_flag=True, help="Keep the work folder after the report.")
@click.option("--progress/--no-progress", default=None, help="A progress bar on standard error (default: on a terminal).")
@format_option("text", "json", "html")
@output_option
def replay_command(config: AgentConfig, state_dir: Path, since: datetime | None, start: datetime | None,
                   end: datetime | None, source_kind: str, pages_per_day: float | None, known_path: Path | None,
                   exact: bool, work_dir: Path | None, keep_work: bool, progress: bool | None, fmt: str) -> None:
    """Replay the running config over past metrics: what would have paged, what would have run.

    Reads the range a day at a time from the configured source (Prometheus range queries or
    remote read, or the embedded scrape history, read-only) and runs the daemon's own cycle
    over it on a clock that moves with the data: refits on its schedule, detection,
    correlation, remediation rules in shadow and notification routes. Into a throwaway store:
    the live store is never written, no playbook runs, nothing is sent. After Ctrl-C the
    same command resumes from the last finished day.

    Exit codes: 0 replayed; 1 nothing to replay, or --pages-per-day not met by any budget.

    Examples: aiops replay --since 7d --config /etc/aiops-agent/agent.yaml
              aiops replay --from 2026-11-30 --to 2026-12-07 --pages-per-day 2 --format html -o week.html
    """
    from agent.replay.run import ReplayError

    begin, finish = _range(since, start, end, config)
    kind = _source_kind(source_kind, config)
    outages = _known(known_path)
    work = work_dir or _default_work_dir(config, begin, finish, f"{kind}/{exact}")
    source = None
    if kind == "embedded":
        from agent.replay.history import EmbeddedHistory

        source = EmbeddedHistory.open(state_dir)
    try:
        replayed = _run(config, begin, finish, work, source, kind, progress, state_dir, exact)
        answer = _report(replayed, config, source, fmt, pages_per_day, outages, known_path)
    except ReplayError:  # nothing was replayed: nothing to resume
        shutil.rmtree(work, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        click.echo(f"stopped; the finished days are kept in {work}: run the same command again to resume", err=True)
        raise SystemExit(130) from None
    finally:
        if source is not None:
            source.close()
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    if answer is not None and not answer.met:
        raise ReplayError(f"no page budget down to {answer.tried[-1].factor:.6g} of the running one pages at most "
                          f"{answer.target_per_day:g} a day over the range; the closest pages "
                          f"{answer.closest.pages_per_day:.2f} a day (page_budget {answer.closest.page_budget:.6g})")


def _range(since: datetime | None, start: datetime | None, end: datetime | None,
           config: AgentConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    if since is not None and start is not None:
        raise click.UsageError("give --since or --from, not both")
    begin = since or start
    if begin is None:
        raise click.UsageError("Missing option '--since' or '--from' (where the replay starts).")
    finish = end or current_clock()()
    step = pd.Timedelta(seconds=config.agent.interval)
    lo, hi = pd.Timestamp(begin).tz_convert("UTC").floor(step), pd.Timestamp(finish).tz_convert("UTC").floor(step)
    if hi <= lo:
        raise click.BadParameter(f"expected the range to end after it starts, found {lo} to {hi}",
                                 param_hint="'--from'/'--to'")
    return lo, hi


def _source_kind(asked: str, config: AgentConfig) -> str:
    kind = config.sources.kind
    if asked == "prometheus" and kind != "prometheus":
        raise click.BadParameter(f"expected sources.kind prometheus in the config, found {kind!r}",
                                 param_hint="'--source'")
    if asked != "auto":
        return asked
    if kind in ("prometheus", "scrape"):
        return "prometheus" if kind == "prometheus" else "embedded"
    raise click.BadParameter(f"expected sources.kind prometheus or scrape in the config (a history to replay), "
                             f"found {kind!r}: files replay with aiops backtest", param_hint="'--source'")


def _known(path: Path | None):
    if path is None:
        return None
    from agent.replay.known import read_known

    return read_known(path)


def _default_work_dir(config: AgentConfig, start: pd.Timestamp, end: pd.Timestamp, kind: str) -> Path:
    key = hashlib.sha256(f"{config.model_dump_json()}|{start}|{end}|{kind}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"aiops-replay-{os.getuid()}-{key}"


def _run(config: AgentConfig, start: pd.Timestamp, end: pd.Timestamp, work: Path, source, kind: str,
         show: bool | None, state_dir: Path, exact: bool):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from agent.backtest.cycles import Judging
    from agent.replay.run import live_silences, run_replay

    console = Console(stderr=True)
    total = (end - start).total_seconds()
    columns = (TextColumn("replay"), BarColumn(), TextColumn("data time {task.fields[reached]}"),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not (console.is_terminal if show is None else show)) as bar:
        task = bar.add_task("", total=total, reached=f"{start:%Y-%m-%d %H:%M}")

        def on_day(day) -> None:
            bar.update(task, completed=(pd.Timestamp(day.end) - start).total_seconds(),
                       reached=f"{day.end:%Y-%m-%d %H:%M}")

        replayed = run_replay(config, start, end, work, source=source, source_name=kind,
                              silences=live_silences(state_dir), on_day=on_day,
                              judging=Judging.CYCLES if exact else Judging.DAYS)
    if replayed.resumed_from is not None:
        click.echo(f"resumed from {replayed.resumed_from:%Y-%m-%d %H:%M} UTC (work folder {work})", err=True)
    return replayed


def _report(replayed, config: AgentConfig, source, fmt: str, pages_per_day: float | None, outages,
            known_path: Path | None):
    from agent.replay.known import check_labels, judge_known
    from agent.replay.render import render_html, render_json, render_text
    from agent.replay.report import build_report
    from agent.replay.run import coverage
    from agent.store import open_store

    notes = coverage(replayed)  # ReplayError when nothing was read
    report = build_report(replayed, notes=notes)
    store = open_store(replayed.state_dir)
    try:
        incidents = store.list_incidents()
    finally:
        store.close()
    answer = known = None
    if outages is not None and known_path is not None:
        judged = {sid for n in range(len(replayed.days)) for sid in _judged(replayed, n)}
        check_labels(known_path, outages, judged)
        known = judge_known(outages, incidents, step_s=config.agent.interval)
    if pages_per_day is not None:
        from agent.replay.budget import find_budget

        days = sum((d.end - d.start).total_seconds() for d in replayed.days if not d.empty) / 86400.0
        answer = find_budget(replayed, config, pages_per_day, pages=report.pages, days=days, incidents=incidents,
                             source=source)
    if fmt == "json":
        click.echo(render_json(report, budget=_budget_dict(answer), known=_known_dict(known)), nl=False)
    elif fmt == "html":
        history = source if replayed.source == "embedded" else None
        click.echo(render_html(report, replayed, history=history), nl=False)
    else:
        click.echo(render_text(report), nl=False)
        click.echo(_budget_text(answer, report) + _known_text(known), nl=False)
    if fmt != "text" and answer is not None:
        click.echo(_budget_text(answer, report), err=True, nl=False)
    return answer


def _judged(replayed, number: int) -> frozenset[str]:
    from agent.replay.hits import read_day_hits

    return read_day_hits(replayed.work_dir, number)[1]


def _budget_dict(answer) -> dict | None:
    if answer is None:
        return None
    from dataclasses import asdict

    return {"target_per_day": answer.target_per_day, "met": answer.met,
            "chosen": asdict(answer.chosen) if answer.chosen else None, "closest": asdict(answer.closest),
            "tried": [asdict(c) for c in answer.tried], "config": answer.config_lines()}


def _known_dict(known) -> dict | None:
    if known is None:
        return None
    from dataclasses import asdict

    return {"recall": known.recall, "median_delay_s": known.median_delay_s,
            "outages": [asdict(o) for o in known.outages]}


def _budget_text(answer, report) -> str:
    if answer is None:
        return ""
    titles = {line.id: line.title for line in report.incidents}
    out = ["", f"page budget for at most {answer.target_per_day:g} pages a day:"]
    for c in answer.tried:
        out.append(f"  x{c.factor:<10.6g} page_budget {c.page_budget:<10.6g} {c.pages_per_day:>7.2f} pages a day")
    if answer.chosen is None:
        out.append(f"  no budget tried meets it; the closest is page_budget {answer.closest.page_budget:.6g} "
                   f"({answer.closest.pages_per_day:.2f} a day): the pages left come from the incidents below")
    elif answer.chosen.factor == 1.0:
        out.append("  the running config meets it")
    pick = answer.chosen or answer.closest
    if pick.dropped:
        out.append("  incidents the stricter budget would not have opened:")
        out += [f"    #{i} {titles.get(i, '')}" for i in pick.dropped]
    if pick.factor != 1.0:
        out.append("  config to apply:")
        out += [f"    {line}" for line in answer.config_lines().splitlines()]
    return "\n".join(out) + "\n"


def _known_text(known) -> str:
    if known is None:
        return ""
    recall = "-" if known.recall is None else f"{known.recall:.2f}"
    delay = "-" if known.median_delay_s is None else f"{known.median_delay_s / 60:.1f}m"
    out = ["", f"known outages: recall {recall}, median delay {delay}"]
    for o in known.outages:
        found = f"found by incident #{o.incident} after {o.delay_s / 60:.1f}m" if o.found else "missed"
        out.append(f"  {o.start:%Y-%m-%d %H:%M} {o.name}: {found}")
    return "\n".join(out) + "\n"


commands: tuple[click.Command, ...] = (replay_command,)
