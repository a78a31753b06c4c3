"""The detect stage's commands (``agent.detection``); ``agent.cli.main`` adds every command listed in
``commands``.

``aiops baseline save --model NAME --from … --to …`` records a model's training distributions
for drift detection; ``aiops baseline show --model NAME`` prints the newest one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from agent.cli.common import AiopsGroup, When, cli_actor, with_context


@click.group("baseline", cls=AiopsGroup)
def baseline_group() -> None:
    """Training baselines of ML models, for drift detection.

    Example: aiops baseline save --model fraud --from 2026-03-01 --to 2026-03-08
    """


@baseline_group.command("save")
@click.option("--model", "model_name", required=True, help="A model named under detectors.drift in the config.")
@click.option("--from", "--since", "start", type=When(), required=True,
              help="Start of the training range: 7d (back from now, also now-7d) or a date (2026-03-01T00:00:00Z).")
@click.option("--to", "--until", "end", type=When(), default="now", show_default=True,
              help="End of the training range; same forms as --from.")
@with_context
def baseline_save(ctx: Any, model_name: str, start: datetime, end: datetime) -> None:
    """Record the distributions of a model's feature and prediction histograms over a time range
    as its drift baseline; later cycles compare their live window with it.

    Example: aiops baseline save --model fraud --from 2026-03-01T00:00:00Z --to now
    """
    from agent.detection.drift import build_baseline
    from agent.sources import Collector

    model = ctx.config.detectors.drift_model(model_name)
    if model is None:
        known = ", ".join(m.name for m in ctx.config.detectors.drift) or "none configured"
        raise click.BadParameter(f"expected a model under detectors.drift ({known}), found {model_name!r}",
                                 param_hint="--model")
    collector = Collector(ctx)
    try:
        baseline = build_baseline(ctx, collector.history, model, start, end, actor=cli_actor(), now=ctx.clock())
    finally:
        collector.close()
    new_id = ctx.store.save_baseline(baseline)
    click.echo(f"baseline #{new_id} for model {model.name}: {_describe(baseline.data)}, "
               f"{start.isoformat(timespec='seconds')} to {end.isoformat(timespec='seconds')}")
    if baseline.data.get("left_out"):
        click.echo(f"  left out {baseline.data['left_out']} steps whose buckets were not cumulative or not all "
                   "there: a counter reset or a change of bucket bounds (a restart or an upgrade)")


@baseline_group.command("show")
@click.option("--model", "model_name", required=True, help="The model whose newest baseline to print.")
@with_context
def baseline_show(ctx: Any, model_name: str) -> None:
    """Print a model's newest baseline: when it was recorded, its range and its features.

    Example: aiops baseline show --model fraud
    """
    baseline = ctx.store.latest_baseline(model_name)
    if baseline is None:
        raise click.ClickException(f"no baseline for model {model_name}; record one with "
                                   f"aiops baseline save --model {model_name} --from ... --to ...")
    click.echo(f"baseline #{baseline.id} for model {baseline.model}, recorded "
               f"{baseline.created_at.isoformat(timespec='seconds')} by {baseline.created_by}")
    click.echo(f"range {baseline.from_at.isoformat(timespec='seconds')} to {baseline.to_at.isoformat(timespec='seconds')}")
    for feature, data in sorted(baseline.data["features"].items()):
        click.echo(f"  {feature}: {len(data['le'])} buckets, {data['cumulative'][-1]:.0f} observations")


def _describe(data: Any) -> str:
    features = data["features"]
    total = sum(d["cumulative"][-1] for d in features.values())
    return f"{len(features)} features, {total:.0f} observations"


commands: tuple[click.Command, ...] = (baseline_group,)
