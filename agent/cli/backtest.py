"""``aiops backtest``: replay files through the configured detect stage (``agent.backtest``);
``agent.cli.main`` adds every command listed in ``commands``."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.common import parse_duration_option

NAB_CYCLE_S = 3600.0
HOSTS_CYCLE_S = 86400.0


@click.command("backtest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Agent config whose detectors replay the files (default: the built-in defaults).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="NAB combined_windows.json for NAB files; for host files, per host scored_from and "
                   "windows (the layout of shared/data/smd/labels.json).")
@click.option("--cycle", "cycle_s", default=None, callback=lambda c, p, v: None if v is None else parse_duration_option(c, p, v),
              help="Data time the detect stage judges at once (default 1h for NAB files, 1d for host files). "
                   "Points are judged by their past alone either way: it changes what a replay costs, not its scores.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Host files replayed at once, one process each (default: one per CPU).")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Folder for the results: one CSV per NAB file, or summary.json and episodes.csv "
                                  "for hosts.")
@click.option("--out", "legacy_out", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True)
def backtest_command(paths: tuple[Path, ...], config_path: Path | None, labels: Path | None, cycle_s: float | None,
                     workers: int | None, output: Path | None, legacy_out: Path | None) -> None:
    """Replay CSV files through the daemon's own cycle with the detectors of --config, on a
    clock that moves with the data.

    NAB's layout (timestamp,value: one series a file) writes DIR/<path relative to the given
    folder>; with --labels it prints the NAB score per profile three ways: threshold swept as
    NAB does, at the configured threshold (the hits the daemon raises), and
    leave-one-folder-out (threshold swept without each folder, scored on it).

    Wide files (timestamp, then one column per metric; .csv or .csv.gz) are hosts: each file
    one host, its columns the host's series, replayed through the detect and correlate stages.
    With --labels (per host scored_from and windows) each host's incidents are judged as pages:
    DIR/summary.json holds event recall, false incidents per host-day and the detection delay,
    in total and per host.

    Examples: aiops backtest data/nab/data --labels data/nab/labels/combined_windows.json --output /tmp/bt
              aiops backtest data/smd --labels data/smd/labels.json --output /tmp/smd
    """
    out_dir = output or legacy_out
    if out_dir is None:
        raise click.UsageError("Missing option '--output' (the folder for the results).")
    from agent.backtest.corpus import CorpusError, find_inputs
    from agent.backtest.hosts import is_wide
    from agent.config import AgentConfig, load_config

    config = load_config(config_path) if config_path is not None else AgentConfig()
    inputs = find_inputs(list(paths))
    wide = [item for item in inputs if is_wide(item.path)]
    if wide and len(wide) != len(inputs):
        narrow = next(item for item in inputs if item not in wide)
        raise CorpusError(narrow.path, f"a NAB file (timestamp,value) among host files (such as {wide[0].path}); "
                                       "replay one kind at a time")
    if wide:
        _hosts(inputs, config, labels, HOSTS_CYCLE_S if cycle_s is None else cycle_s, workers, out_dir)
    else:
        _nab(paths, inputs, config, labels, NAB_CYCLE_S if cycle_s is None else cycle_s, out_dir)


def _progress(what: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
    return Progress(*columns, console=Console(stderr=True), transient=True)


def _nab(paths: tuple[Path, ...], inputs: list, config, labels: Path | None, cycle_s: float, out_dir: Path) -> None:
    from agent.backtest.corpus import CorpusError
    from agent.backtest.hosts import is_host_labels
    from agent.backtest.runner import backtest, write_results

    if labels is not None and is_host_labels(labels):
        raise CorpusError(labels, "host labels (scored_from, windows) for NAB files; NAB files take NAB's "
                                  "combined_windows.json")
    with _progress("backtest") as progress:
        task = progress.add_task("", total=len(inputs))
        result = backtest(list(paths), config, labels=labels, cycle_s=cycle_s,
                          on_file=lambda f: progress.update(task, advance=1, description=f.item.key))
    written = write_results(result, out_dir)
    rules = ", ".join(r.name for r in config.detectors.rules) or "none"
    click.echo(f"detectors {rules}: {len(written)} files replayed, results in {out_dir}")
    failed = sum(f.failed_cycles for f in result.files)
    if failed:
        click.echo(f"warning: the detect stage failed in {failed} cycles; see the log", err=True)
    for key in result.unlabelled if labels is not None else []:
        click.echo(f"warning: {key}: not in {labels}; left out of the score", err=True)
    for how, outcomes in (("swept", result.swept), ("configured", result.configured),
                          ("leave-one-folder-out", result.lofo)):
        for outcome in outcomes.values():
            threshold = "" if outcome.threshold != outcome.threshold else f"threshold {outcome.threshold:.6g}, "
            click.echo(
                f"{how} {outcome.profile}: NAB score {outcome.score:.1f} ({threshold}raw {outcome.raw:.2f}); "
                f"windows detected {outcome.detected}/{outcome.windows}, recall {outcome.recall:.2f}, "
                f"precision {outcome.precision:.2f} ({outcome.false_positives} false-positive rows)"
            )


def _hosts(inputs: list, config, labels: Path | None, cycle_s: float, workers: int | None, out_dir: Path) -> None:
    from agent.backtest.corpus import CorpusError
    from agent.backtest.hosts import (
        host_name,
        is_host_labels,
        judge,
        read_host_labels,
        read_wide,
        replay_hosts,
        summary,
        write_summary,
    )

    known = None
    if labels is not None:
        if not is_host_labels(labels):
            raise CorpusError(labels, "NAB windows for host files; host files take per host scored_from and "
                                      "windows (the layout of shared/data/smd/labels.json)")
        known = read_host_labels(labels)
    hosts = {}
    for item in inputs:  # every file checked before the first replay: a bad one stops nothing half-way
        name = host_name(item.path)
        if name in hosts:
            raise CorpusError(item.path, f"host {name} twice (also {hosts[name].path})")
        read_wide(item.path)
        hosts[name] = item
    for name in sorted(set(known or {}) - set(hosts)):
        click.echo(f"warning: {labels}: host {name} has no file among the inputs; left out", err=True)
    with _progress("hosts") as progress:
        task = progress.add_task("", total=len(hosts))
        runs = replay_hosts([item.path for item in hosts.values()], config, cycle_s=cycle_s, workers=workers,
                            on_host=lambda run: progress.update(task, advance=1, description=run.host))
    for run in runs:
        for note in run.notes:
            click.echo(f"warning: {hosts[run.host].path}: {note}", err=True)
        if run.failed_cycles:
            click.echo(f"warning: {run.host}: the detect stage failed in {run.failed_cycles} cycles; see the log",
                       err=True)
    scored = [run for run in runs if known is not None and run.host in known]
    for run in runs:
        if known is not None and run.host not in known:
            click.echo(f"warning: {run.host}: not in {labels}; replayed, left out of the score", err=True)
    figures = summary([judge(run, known[run.host]) for run in scored], scored) if known is not None else \
        {"hosts": len(runs), "episodes": sum(len(r.episodes) for r in runs)}
    target = write_summary(out_dir, figures, runs)
    rules = ", ".join(r.name for r in config.detectors.rules) or "none"
    click.echo(f"detectors {rules}: {len(runs)} hosts replayed, results in {target}")
    if known is None:
        return
    click.echo(f"{'host':<24} {'series':>6} {'windows':>7} {'found':>5} {'false':>5} {'false/day':>9} {'delay':>7}")
    for row in figures["per_host"]:
        click.echo(f"{row['host']:<24} {row['series']:>6} {row['windows']:>7} {row['windows_detected']:>5} "
                   f"{row['false_incidents']:>5} {_num(row['false_incidents_per_day']):>9} "
                   f"{_delay(row['median_delay_s']):>7}")
    click.echo(f"event recall {_num(figures['event_recall'])} ({figures['windows_detected']}/{figures['windows']} "
               f"windows), false incidents {figures['false_incidents']} over {figures['scored_host_days']} "
               f"host-days = {_num(figures['false_incidents_per_host_day'])} a host-day, median delay "
               f"{_delay(figures['median_delay_s'])}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _delay(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}m"


commands: tuple[click.Command, ...] = (backtest_command,)
