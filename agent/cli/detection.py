"""The detect stage's commands (``agent.detection``); ``agent.cli.main`` adds every command listed in
``commands``.

``aiops baseline save --model NAME --from … --to …`` records a model's training distributions
for drift detection; ``aiops baseline list`` lists them, newest first; ``aiops baseline show``
prints one (an ID, or a model's newest: the one its drift is judged by).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from agent.cli.common import AiopsGroup, When, cli_actor, format_option, output_option, with_context
from agent.store.detectors import Baseline


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


@baseline_group.command("list")
@click.option("--model", "model_name", default=None, help="Only this model's baselines.")
@format_option("text", "json")
@output_option
@with_context
def baseline_list(ctx: Any, model_name: str | None, fmt: str) -> None:
    """List recorded baselines, newest first; a model's drift is judged by its newest.

    Example: aiops baseline list --model fraud
    """
    baselines = ctx.store.baselines(model_name)
    if fmt == "json":
        click.echo(json.dumps([_baseline_dict(b, features=False) for b in baselines], indent=2))
        return
    newest: set[str] = set()
    for b in baselines:
        judged = " (in use)" if b.model not in newest else ""
        newest.add(b.model)
        click.echo(f"#{b.id:<4} {b.model:<16} {_describe(b.data)}, {b.from_at:%Y-%m-%d %H:%M} to "
                   f"{b.to_at:%Y-%m-%d %H:%M}Z, recorded {b.created_at:%Y-%m-%d %H:%M}Z by {b.created_by}{judged}")
    if not baselines:
        click.echo("no baselines" + (f" for model {model_name}" if model_name else "") +
                   "; record one with aiops baseline save --model NAME --from 7d")


@baseline_group.command("show")
@click.argument("baseline_id", type=int, required=False)
@click.option("--model", "model_name", default=None, help="Instead of an ID: the model's newest baseline.")
@format_option("text", "json")
@output_option
@with_context
def baseline_show(ctx: Any, baseline_id: int | None, model_name: str | None, fmt: str) -> None:
    """Print a baseline (BASELINE_ID, or --model for the model's newest): when it was recorded,
    its range and its features.

    Example: aiops baseline show --model fraud
    """
    if (baseline_id is None) == (model_name is None):
        raise click.UsageError("give a baseline ID or --model NAME (one of them)")
    baseline = ctx.store.baseline(baseline_id) if baseline_id is not None else ctx.store.latest_baseline(model_name)
    if baseline is None:
        what = f"baseline #{baseline_id}" if baseline_id is not None else f"baseline for model {model_name}"
        raise click.ClickException(f"no {what}; see aiops baseline list, or record one with "
                                   f"aiops baseline save --model {model_name or 'NAME'} --from 7d")
    if fmt == "json":
        click.echo(json.dumps(_baseline_dict(baseline, features=True), indent=2))
        return
    click.echo(f"baseline #{baseline.id} for model {baseline.model}, recorded "
               f"{baseline.created_at.isoformat(timespec='seconds')} by {baseline.created_by}")
    click.echo(f"range {baseline.from_at.isoformat(timespec='seconds')} to {baseline.to_at.isoformat(timespec='seconds')}")
    for feature, data in sorted(baseline.data["features"].items()):
        click.echo(f"  {feature}: {len(data['le'])} buckets, {data['cumulative'][-1]:.0f} observations")


def _baseline_dict(baseline: Baseline, *, features: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": baseline.id, "model": baseline.model, "from": baseline.from_at.isoformat(),
        "to": baseline.to_at.isoformat(), "created_at": baseline.created_at.isoformat(),
        "created_by": baseline.created_by, "left_out": baseline.data.get("left_out", 0),
        "observations": {f: d["cumulative"][-1] for f, d in sorted(baseline.data["features"].items())}}
    if features:
        body["features"] = {f: {"le": d["le"], "cumulative": d["cumulative"]}
                            for f, d in sorted(baseline.data["features"].items())}
    return body


def _describe(data: Any) -> str:
    features = data["features"]
    total = sum(d["cumulative"][-1] for d in features.values())
    return f"{len(features)} features, {total:.0f} observations"


commands: tuple[click.Command, ...] = (baseline_group,)
