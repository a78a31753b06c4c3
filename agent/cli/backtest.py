"""``aiops backtest``: replay files through the configured detect stage (``agent.backtest``);
``agent.cli.main`` adds every command listed in ``commands``."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.common import parse_duration_option


@click.command("backtest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Agent config whose detectors replay the files (default: the built-in defaults).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="NAB combined_windows.json: score the replay per NAB profile.")
@click.option("--cycle", "cycle_s", default="1h", show_default=True, callback=parse_duration_option,
              help="Data time between two replayed cycles. Points are judged by their past alone "
                   "either way; a shorter cycle refits on the daemon's schedule more finely, and costs more.")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Folder for one result CSV per input (timestamp,value,anomaly_score,label,hit).")
@click.option("--out", "legacy_out", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True)
def backtest_command(paths: tuple[Path, ...], config_path: Path | None, labels: Path | None, cycle_s: float,
                     output: Path | None, legacy_out: Path | None) -> None:
    """Replay CSV files in NAB's layout (files or folder trees) through the daemon's own cycle
    with the detectors of --config, on a clock that moves with the data, and write
    DIR/<path relative to the given folder>. With --labels print the NAB score per profile
    three ways: threshold swept as NAB does, at the configured threshold (the hits the daemon
    raises), and leave-one-folder-out (threshold swept without each folder, scored on it).

    Example: aiops backtest data/nab/data --labels data/nab/labels/combined_windows.json --output /tmp/bt
    """
    out_dir = output or legacy_out
    if out_dir is None:
        raise click.UsageError("Missing option '--output' (the folder for the result CSVs).")
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from agent.backtest.corpus import find_inputs
    from agent.backtest.runner import backtest, write_results
    from agent.config import AgentConfig, load_config

    config = load_config(config_path) if config_path is not None else AgentConfig()
    total = len(find_inputs(list(paths)))
    columns = (TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("", total=total)
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


commands: tuple[click.Command, ...] = (backtest_command,)
