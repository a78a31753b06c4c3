"""The detect stage's commands (``agent.detection``); ``agent.cli.main`` adds every command listed in
``commands``.

``aiops baseline save --model NAME --from … --to …`` records a model's training distributions
for drift detection; ``aiops baseline show --model NAME`` prints the newest one.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from agent.cli.common import AiopsGroup, cli_actor, current_clock, with_context
from agent.config.types import parse_duration

_RELATIVE = re.compile(r"^now(?:\s*-\s*(.+))?$")


class When(click.ParamType):
    """A point in time: ISO-8601 (naive means UTC), ``now``, or ``now-7d``."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        match = _RELATIVE.match(text)
        try:
            if match:
                ago = parse_duration(match.group(1)) if match.group(1) else 0.0
                return current_clock()() - timedelta(seconds=ago)
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"expected an ISO-8601 time (2026-03-01T00:00:00Z), now or now-7d, found {text!r}", param, ctx)
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


@click.group("baseline", cls=AiopsGroup)
def baseline_group() -> None:
    """Training baselines of ML models, for drift detection.

    Example: aiops baseline save --model fraud --from 2026-03-01 --to 2026-03-08
    """


@baseline_group.command("save")
@click.option("--model", "model_name", required=True, help="A model named under detectors.drift in the config.")
@click.option("--from", "start", type=When(), required=True, help="Start of the training range (ISO-8601 or now-7d).")
@click.option("--to", "end", type=When(), default="now", show_default=True, help="End of the training range.")
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
