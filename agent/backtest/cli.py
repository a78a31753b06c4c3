"""CLI commands of this stage; ``agent.cli`` adds every command listed in ``commands``."""

from __future__ import annotations

from pathlib import Path

import click

from agent.backtest.runner import DEFAULT_DETECTOR, REGISTRY


@click.command("backtest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--detector", default=DEFAULT_DETECTOR, show_default=True,
              help=f"Detector to run walk-forward: one of {', '.join(REGISTRY)}.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="NAB combined_windows.json: score the run per NAB profile.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for one result CSV per input (timestamp,value,anomaly_score,label).")
def backtest_command(paths: tuple[Path, ...], detector: str, labels: Path | None, out_dir: Path) -> None:
    """Run a detector walk-forward over CSV files in NAB's layout (files or folder trees) and
    write DIR/<path relative to the given folder>; with --labels print the NAB score per profile
    and the precision and recall of windows.

    Example: aiops backtest data/nab/data --labels data/nab/labels/combined_windows.json --out /tmp/bt
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.backtest.corpus import find_inputs
    from agent.backtest.runner import backtest, get_spec, write_results

    get_spec(detector)  # an unknown name fails before any work
    total = len(find_inputs(list(paths)))
    columns = (TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("", total=total)
        result = backtest(list(paths), detector=detector, labels=labels,
                          on_file=lambda f: progress.update(task, advance=1, description=f.item.key))
    written = write_results(result, out_dir)
    click.echo(f"{result.detector}: {len(written)} files scored, results in {out_dir}")
    failed = sum(f.failed_fits for f in result.files)
    if failed:
        click.echo(f"warning: {failed} fits or scorings failed; their rows score 0", err=True)
    for key in result.unlabelled if labels is not None else []:
        click.echo(f"warning: {key}: not in {labels}; left out of the score", err=True)
    for outcome in result.profiles.values():
        click.echo(
            f"{outcome.profile}: NAB score {outcome.score:.1f} (threshold {outcome.threshold:.6g}, raw {outcome.raw:.2f}); "
            f"windows detected {outcome.detected}/{outcome.windows}, recall {outcome.recall:.2f}, "
            f"precision {outcome.precision:.2f} ({outcome.false_positives} false-positive rows)"
        )


commands: list[click.Command] = [backtest_command]
