"""``aiops playbook test``: a playbook in check mode against localhost, with the variables a
given incident would give it through its rule. Nothing is recorded in the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config.remediation import RemediationConfig, Rule
from agent.errors import RemediationError
from remediations import rules, runner
from remediations.playbooks import read_header


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    rule: str
    variables: dict[str, Any]   # as they would be recorded: secrets redacted
    execution: runner.Execution


def trial(config: RemediationConfig, playbook: str, incident: Any, *, work_dir: Path,
          rule_name: str | None = None) -> Trial:
    path = rules.resolve_playbook(config.playbook_dir, playbook, rule=rule_name or "-")
    read_header(path)  # a playbook without its header is not tried
    rule = _rule_for(config, path, incident, rule_name)
    label_vars = rules.label_vars(rule, incident, config.label_pattern)
    trusted = {**rule.vars, "aiops_incident_id": incident.id, "aiops_rule": rule.name,
               "aiops_artifact_dir": str(work_dir / "run")}
    execution = runner.execute(
        playbook=path, project_dir=config.playbook_dir.resolve(), private_dir=work_dir / "run",
        targets=["localhost"], check=True, trusted_vars=trusted, label_vars=label_vars,
        timeout_s=config.check_timeout, run_key=f"trial-{work_dir.name}", env=rule.env, pass_env=rule.pass_env,
        tracking=config.process_tracking)
    return Trial(rule=rule.name, variables=rules.redact({**trusted, **label_vars}), execution=execution)


def _rule_for(config: RemediationConfig, path: Path, incident: Any, rule_name: str | None) -> Rule:
    if rule_name is not None:
        rule = config.rule(rule_name)
        if rule is None:
            raise RemediationError(rule_name, "expected a configured rule, found none by that name")
        return rule
    base = config.playbook_dir.resolve()
    for rule in config.rules:
        if (base / rule.playbook).resolve() == path and rules.matches(rule, incident):
            return rule
    # No rule uses it for this incident yet: try it bare, with no variables from labels.
    return Rule(name="adhoc", playbook=str(path.relative_to(base)))
