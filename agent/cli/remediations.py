"""``aiops remediation …`` and ``aiops playbook …``, over ``remediations``; ``agent.cli.main`` adds
every command listed in ``commands``."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import yaml

from agent.cli.common import (
    AiopsGroup,
    cli_actor,
    current_clock,
    with_config,
    with_context,
)
from agent.config import AgentConfig
from agent.errors import RemediationError
from agent.flow.runs import RunnerStatus, RunStatus, run_dict


@click.group("remediation", cls=AiopsGroup)
def remediation_group() -> None:
    """Remediation runs: list, show, approve; pause and resume all automation.

    Example: aiops remediation list --status waiting_approval
    """


@remediation_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), default=None, help="Only runs in this state.")
@click.option("--incident", type=int, default=None, help="Only runs for this incident.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@with_context
def list_runs(ctx: Any, status: str | None, incident: int | None, limit: int, as_json: bool) -> None:
    """Runs, newest first.

    Example: aiops remediation list --status waiting_approval
    """
    runs = ctx.store.list_runs(incident_id=incident, statuses=[RunStatus(status)] if status else None, limit=limit)
    if as_json:
        click.echo(json.dumps([{k: v for k, v in run_dict(r).items() if k != "output"} for r in runs]))
        return
    if ctx.store.get_flag("remediation.paused") == "1":
        click.echo("remediation is PAUSED (aiops remediation resume)")
    for r in runs:
        click.echo(f"{r.id:>5}  {r.requested_at:%Y-%m-%d %H:%M:%S}  incident {r.incident_id or '-':<5} "
                   f"{r.rule:<20} {r.mode:<8} {r.status:<16} rc={'' if r.rc is None else r.rc:<4} "
                   f"{r.playbook} on {', '.join(r.targets)}")
    if not runs:
        click.echo("no remediation runs")


@remediation_group.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@with_context
def show_run(ctx: Any, run_id: int, as_json: bool) -> None:
    """One run with its variables, per-host summary and output.

    Example: aiops remediation show 12
    """
    run = ctx.store.get_run(run_id)
    if run is None:
        raise click.ClickException(f"no remediation run {run_id}")
    data = run_dict(run)
    if as_json:
        click.echo(json.dumps(data))
        return
    output = data.pop("output")
    for key, value in data.items():
        if value not in (None, {}, []):
            click.echo(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if output:
        click.echo("output:\n" + output)


@remediation_group.command("approve")
@click.argument("run_id", type=int)
@with_context
def approve(ctx: Any, run_id: int) -> None:
    """Approve a run waiting for approval; the daemon runs it in its next cycle.

    Example: aiops remediation approve 12
    """
    run = ctx.store.approve_run(run_id, actor=cli_actor(), now=ctx.clock())
    click.echo(f"run {run.id} approved by {run.approved_by}: {run.playbook} on {', '.join(run.targets)} "
               "runs in the next cycle")


@remediation_group.command("pause")
@click.option("--reason", default="", help="Why, for the audit log.")
@with_context
def pause(ctx: Any, reason: str) -> None:
    """Stop all remediation now (the running daemon honours it from its next decision).

    Example: aiops remediation pause --reason "change freeze"
    """
    from remediations.safety import set_paused

    set_paused(ctx.store, True, actor=cli_actor(), reason=reason, now=ctx.clock())
    click.echo("remediation paused: no playbook starts until 'aiops remediation resume'")


@remediation_group.command("resume")
@click.option("--reason", default="", help="Why, for the audit log.")
@click.option("--rule", "rule", default=None, help="Instead: close this rule's circuit breaker.")
@with_context
def resume(ctx: Any, reason: str, rule: str | None) -> None:
    """Let remediation run again, or close one rule's open circuit breaker with --rule.

    Example: aiops remediation resume
    """
    from remediations.safety import reset_breaker, set_paused

    if rule is not None:
        if ctx.config.remediation.rule(rule) is None:
            raise click.BadParameter(f"expected a configured rule, found {rule!r}", param_hint="--rule")
        reset_breaker(ctx.store, rule, actor=cli_actor(), now=ctx.clock())
        click.echo(f"circuit breaker of rule {rule} closed")
        return
    set_paused(ctx.store, False, actor=cli_actor(), reason=reason, now=ctx.clock())
    click.echo("remediation resumed")


@click.group("playbook", cls=AiopsGroup)
def playbook_group() -> None:
    """Try and check the playbooks in remediation.playbook_dir.

    Example: aiops playbook lint
    """


@playbook_group.command("lint")
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Playbook directory (default: remediation.playbook_dir).")
@click.option("--no-syntax", is_flag=True, help="Skip ansible-playbook --syntax-check.")
@with_config
def lint(config: AgentConfig, state_dir: Path, directory: Path | None, no_syntax: bool) -> None:
    """Check every playbook's header (fixes, vars, idempotent, check_mode_safe) and syntax.

    Example: aiops playbook lint --dir playbooks
    """
    from remediations.playbooks import lint as lint_dir
    from remediations.playbooks import playbooks

    directory = directory or config.remediation.playbook_dir
    problems = lint_dir(directory, syntax=not no_syntax)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{len(playbooks(directory))} playbooks ok in {directory}")


@playbook_group.command("test")
@click.argument("playbook")
@click.option("--incident", "incident_file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="YAML or JSON incident: severity, labels, signals (series_id, detector, metric, labels: the incident's and their own), root_cause.")
@click.option("--rule", "rule_name", default=None, help="Rule whose variables to use (default: the first matching one).")
@with_config
def test(config: AgentConfig, state_dir: Path, playbook: str, incident_file: Path, rule_name: str | None) -> None:
    """Run PLAYBOOK in check mode against localhost with the variables INCIDENT would give it.

    Example: aiops playbook test restart_service.yml --incident incident.yaml
    """
    from remediations.trial import trial

    incident = incident_from_file(incident_file)
    result = trial(config.remediation, playbook, incident, rule_name=rule_name,
                   work_dir=Path(tempfile.mkdtemp(prefix="aiops-playbook-test-")))
    click.echo(f"rule: {result.rule}")
    click.echo(f"variables: {json.dumps(result.variables, sort_keys=True)}")
    click.echo(result.execution.output.rstrip())
    click.echo(f"check run {result.execution.status} (rc {result.execution.rc})")
    shutil.rmtree(result.execution.private_dir.parent, ignore_errors=True)
    if result.execution.status is not RunnerStatus.SUCCESSFUL:
        sys.exit(1)


def incident_from_file(path: Path) -> Any:
    """An ``Incident`` from a YAML/JSON file (only labels, severity, signals and root cause matter)."""
    from agent.flow.incidents import Incident, IncidentStatus, Severity, Signal

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RemediationError("-", f"{path}: expected a YAML or JSON incident, found {exc}") from exc
    if not isinstance(data, dict):
        raise RemediationError("-", f"{path}: expected a mapping, found {type(data).__name__}")
    now = current_clock()()
    labels = {str(k): str(v) for k, v in (data.get("labels") or {}).items()}
    # A signal carries the incident's labels under its own, as the signal the incident took them from does.
    signals = tuple(Signal(series_id=str(s.get("series_id", s.get("metric", "series"))), detector=str(s.get("detector", "")),
                           metric=str(s.get("metric", "")),
                           labels={**labels, **{str(k): str(v) for k, v in (s.get("labels") or {}).items()}},
                           first_at=now, last_at=now) for s in data.get("signals") or [])
    return Incident(id=int(data.get("id", 0)), status=IncidentStatus.OPEN, severity=Severity(data.get("severity", "warning")),
                    title=str(data.get("title", path.name)), labels=labels,
                    started_at=now, detected_at=now, updated_at=now, root_cause=data.get("root_cause"), signals=signals)


commands: tuple[click.Command, ...] = (remediation_group, playbook_group)
