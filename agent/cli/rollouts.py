"""CLI commands for model operations: ``aiops rollout …`` and ``aiops model …``; ``agent.cli.main``
adds every command listed in ``commands``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from agent.cli.common import AiopsGroup, cli_actor, current_clock, format_option, output_option, with_context
from agent.flow.rollouts import (
    RolloutStatus,
    measurement_dict,
    retrain_dict,
    rollout_dict,
    served_dict,
    version_dict,
)
from agent.report.tables import as_text
from agent.rollouts import engine, views
from agent.rollouts.serving import serving_now


@click.group("rollout", cls=AiopsGroup)
def rollout_group() -> None:
    """Guarded model rollouts: start, follow, abort, promote.

    Example: aiops rollout start --model fraud --version v4 --canary localhost
    """


@rollout_group.command("start")
@click.option("--model", "model", required=True, help="A model configured under models.")
@click.option("--version", "version", required=True, help="The version to roll out (its playbook finds it).")
@click.option("--canary", default=None, metavar="HOSTS", help="Comma-separated canary hosts (default: the model's).")
@click.option("--reason", default="", help="Why, for the audit log (required with --override-gate).")
@click.option("--override-gate", is_flag=True,
              help="Roll out a version whose gate failed, or that never passed one (audited with --reason).")
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def start_command(ctx: Any, model: str, version: str, canary: str | None, reason: str, override_gate: bool,
                  fmt: str) -> None:
    """Record a rollout; the daemon's next cycle runs the rollout playbook on the canary and
    analyses it. A version the models directory does not hold is refused; so is one whose gate
    failed or that never passed one, unless --override-gate --reason TEXT.

    Example: aiops rollout start --model fraud --version v4 --canary web1
    """
    hosts = [h.strip() for h in canary.split(",") if h.strip()] if canary else None
    rollout = engine.start(ctx, model, version, canary=hosts, actor=cli_actor(), now=current_clock()(),
                           reason=reason, override_gate=override_gate)
    if fmt == "json":
        click.echo(json.dumps(rollout_dict(rollout)))
        return
    analysis = engine.model_config(ctx, model).analysis
    if rollout.gate_override:
        click.echo(f"gate overridden: {rollout.gate_override['problem']}; recorded with your reason", err=True)
    click.echo(f"rollout {rollout.id}: {model} {version} on {', '.join(rollout.canary)} first "
               f"(previous: {rollout.previous_version or 'unknown'}); analysis every {analysis.interval:g}s for "
               f"{analysis.duration:g}s; a version failing every measurement is rolled back "
               f"{analysis.worst_case_rollback_s:g}s after its canary starts (plus up to one cycle)")


@rollout_group.command("list")
@click.option("--model", default=None, help="Only this model's rollouts.")
@click.option("--active", is_flag=True, help="Only rollouts still under way.")
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def list_command(ctx: Any, model: str | None, active: bool, fmt: str) -> None:
    """Rollouts, newest first (the same table as the /rollouts page).

    Example: aiops rollout list --active
    """
    rollouts = ctx.store.list_rollouts(model=model, active=True if active else None)
    if fmt == "json":
        click.echo(json.dumps([rollout_dict(r) for r in rollouts]))
        return
    click.echo(as_text(views.rollouts_table(rollouts)), nl=False)


@rollout_group.command("status")
@click.argument("rollout_id", type=int)
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def status_command(ctx: Any, rollout_id: int, fmt: str) -> None:
    """One rollout and its measurements, times to the second (as /rollouts/ID shows them).

    Example: aiops rollout status 3
    """
    rollout = ctx.store.get_rollout(rollout_id)
    if rollout is None:
        raise click.ClickException(f"no rollout {rollout_id}")
    measurements = ctx.store.measurements(rollout_id)
    if fmt == "json":
        click.echo(json.dumps({**rollout_dict(rollout), "measurements": [measurement_dict(m) for m in measurements]}))
        return
    click.echo(as_text(views.rollout_table(rollout)) + "\n" + as_text(views.measurements_table(measurements)), nl=False)


def _move(ctx: Any, rollout_id: int, verb: str, reason: str) -> None:
    act = engine.abort if verb == "abort" else engine.promote
    rollout = act(ctx, rollout_id, actor=cli_actor(), reason=reason, now=current_clock()())
    tail = "" if rollout.status.done else " (the daemon's next cycle runs the playbook)"
    click.echo(f"rollout {rollout.id}: {rollout.status}{tail}")


@rollout_group.command("abort")
@click.argument("rollout_id", type=int)
@click.option("--reason", default="", help="Why, for the audit log.")
@with_context
def abort_command(ctx: Any, rollout_id: int, reason: str) -> None:
    """Stop a rollout: its version is rolled back on the canary (also: approve a waiting rollback).

    Example: aiops rollout abort 3 --reason "latency looks wrong"
    """
    _move(ctx, rollout_id, "abort", reason)


@rollout_group.command("promote")
@click.argument("rollout_id", type=int)
@click.option("--reason", default="", help="Why, for the audit log.")
@with_context
def promote_command(ctx: Any, rollout_id: int, reason: str) -> None:
    """Promote a paused (or still analysing) rollout to every host.

    Example: aiops rollout promote 3 --reason "no traffic on the canary; checked by hand"
    """
    _move(ctx, rollout_id, "promote", reason)


@click.group("model", cls=AiopsGroup)
def model_group() -> None:
    """The model registry: versions, who deployed them, gates and outcomes; retrain.

    Example: aiops model show fraud
    """


@model_group.command("list")
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def model_list(ctx: Any, fmt: str) -> None:
    """Configured models: the version serving each, since when and what put it there, and what
    the models directory serves (as /models shows them).

    Example: aiops model list
    """
    if fmt == "json":
        rows = []
        for config in ctx.config.models:
            serving = ctx.store.serving_version(config.name)
            active = ctx.store.list_rollouts(model=config.name, active=True, limit=1)
            rows.append({"model": config.name, "serving": serving.version if serving else None,
                         "deployed_at": serving.deployed_at.isoformat() if serving and serving.deployed_at else None,
                         "models_dir_serves": serving_now(config) if config.serving else None,
                         "versions": len(ctx.store.model_versions(config.name)),
                         "active_rollout": active[0].id if active else None})
        click.echo(json.dumps(rows))
        return
    click.echo(as_text(views.models_table(ctx.config, ctx.store)), nl=False)


@model_group.command("show")
@click.argument("name")
@format_option("text", "json", json_alias=True)
@output_option
@with_context
def model_show(ctx: Any, name: str, fmt: str) -> None:
    """A model's versions (who made and deployed each, the gate passed or failed, overrides),
    every version that served and what put it there, and its retrains.

    Example: aiops model show fraud
    """
    engine.model_config(ctx, name)
    versions = ctx.store.model_versions(name)
    retrains = ctx.store.list_retrains(name)
    history = ctx.store.serving_history(name)
    if fmt == "json":
        click.echo(json.dumps({"model": name, "versions": [version_dict(v) for v in versions],
                               "served": [served_dict(s) for s in history],
                               "retrains": [retrain_dict(r) for r in retrains]}))
        return
    click.echo(f"model {name}\n\nversions\n" + as_text(views.versions_table(versions))
               + "\nserved\n" + as_text(views.served_table(history))
               + "\nretrains\n" + as_text(views.retrains_table(retrains)), nl=False)


@model_group.command("retrain")
@click.argument("name")
@click.option("--reason", default="asked by hand", help="Why, for the audit log.")
@with_context
def model_retrain(ctx: Any, name: str, reason: str) -> None:
    """Run the model's retrain playbook now; a candidate that passes the gate starts a rollout.
    Exits 0 when it did, 1 when the candidate was rejected, the retrain failed, or it was
    skipped (over max_per_period), so a scheduled job can tell.

    Example: aiops model retrain fraud --reason "new labels arrived"
    """
    from agent.flow.rollouts import RetrainStatus
    from agent.rollouts.retrain import retrain

    done = retrain(ctx, name, actor=cli_actor(), now=current_clock()(), reason=reason)
    click.echo(f"retrain {done.id}: {done.status} {done.candidate or ''} ({done.reason})"
               + (f"; rollout {done.rollout_id} started" if done.rollout_id else ""))
    if done.status is not RetrainStatus.PASSED:
        sys.exit(1)


commands: tuple[click.Command, ...] = (rollout_group, model_group)
__all__ = ["RolloutStatus", "commands"]
