"""Config section `remediation`: which playbook fixes which incident, and the limits around it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.config.types import ConfigPath, Seconds, Section, check_regex

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
DEFAULT_LABEL_PATTERN = r"^(?!.*/\.\.)[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$"


class Match(Section):
    """What an incident must look like for a rule to apply. Every given key must hold."""

    labels: dict[str, str] = {}
    labels_regex: dict[str, str] = {}
    detector: str | None = None
    metric: str | None = None
    severity: list[Literal["critical", "warning", "info"]] = []
    root_cause: str | None = None

    @field_validator("labels_regex")
    @classmethod
    def _check_regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value.values():
            check_regex(pattern)
        return value


class Targets(Section):
    """Which inventory hosts a run acts on, and how it spreads over several of them."""

    # The incident (or signal) label whose values name inventory hosts; unset: `hosts`.
    label: str | None = None
    hosts: list[str] = ["localhost"]
    canary: bool = True
    batch_size: int = Field(default=5, ge=1)


class Rule(Section):
    name: str
    match: Match = Match()
    playbook: str
    mode: Literal["auto", "approve", "suggest"] = "approve"
    targets: Targets = Targets()
    vars: dict[str, Any] = {}
    vars_from_labels: dict[str, str] = {}
    rollback_playbook: str | None = None
    timeout: Seconds | None = Field(default=None, gt=0)
    max_runs_per_target_per_hour: int | None = Field(default=None, ge=1)
    cooldown: Seconds | None = None
    on_interrupted: Literal["page", "retry"] = "page"
    # The playbook's environment holds only PATH, HOME, LANG, LC_*, TZ, ... of the agent's: a rule
    # passes more on purpose, as values (env) or as names taken from the agent's environment.
    env: dict[str, str] = {}
    pass_env: list[str] = []

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"expected a rule name of lowercase letters, digits, '_', '.', '-', found {value!r}")
        return value

    @field_validator("vars_from_labels", "vars")
    @classmethod
    def _check_var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not _VAR.match(key):
                raise ValueError(f"expected variable names like service_name, found {key!r}")
        return value


    @field_validator("env", "pass_env")
    @classmethod
    def _check_env_names(cls, value: Any) -> Any:
        for key in value:
            if not _VAR.match(key):
                raise ValueError(f"expected environment variable names like API_MODE, found {key!r}")
        return value


class Limits(Section):
    max_runs_per_hour: int = Field(default=20, ge=1)
    max_runs_per_target_per_hour: int = Field(default=3, ge=1)
    cooldown: Seconds = 600.0
    concurrency: int = Field(default=2, ge=1)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_reset: Seconds = 3600.0


class Verify(Section):
    period: Seconds = Field(default=300.0, ge=0)
    deadline: Seconds = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _deadline_after_period(self) -> "Verify":
        if self.deadline < self.period:
            raise ValueError(f"expected verify.deadline >= verify.period, found {self.deadline:g}s < {self.period:g}s")
        return self


class RemediationConfig(Section):
    """Settings for remediation."""

    enabled: bool = True
    # Default ../playbooks, relative to the config file (config/ in the repository).
    playbook_dir: ConfigPath = Field(default=Path("../playbooks"), validate_default=True)
    inventory: ConfigPath | None = None
    shadow: bool = False
    approval_expiry: Seconds = Field(default=3600.0, gt=0)
    timeout: Seconds = Field(default=600.0, gt=0)
    check_timeout: Seconds = Field(default=300.0, gt=0)
    label_pattern: str = DEFAULT_LABEL_PATTERN
    keep_artifacts: int = Field(default=50, ge=1)
    # How a run's processes are found and killed: a cgroup per run (cgroup), the agent as child
    # subreaper (subreaper), or cgroup when a writable cgroup v2 is there (auto).
    process_tracking: Literal["auto", "cgroup", "subreaper"] = "auto"
    # Playbook runs execute beside the cycle on this many worker threads (0: inside the remediate
    # stage, one after the other, the cycle waiting). Subreaper tracking cannot tell two runs'
    # orphans apart, so under it at most one run is under way whatever this says.
    workers: int = Field(default=2, ge=0, le=16)
    limits: Limits = Limits()
    verify: Verify = Verify()
    rules: list[Rule] = []

    @field_validator("playbook_dir", mode="after")
    @classmethod
    def _anchor_playbook_dir(cls, value: Path) -> Path:
        # Still relative only when no config file was read (the section's defaults are built
        # without one): then it is taken relative to the repository's config/ directory.
        return value if value.is_absolute() else _REPO_CONFIG / value

    @field_validator("label_pattern")
    @classmethod
    def _check_label_pattern(cls, value: str) -> str:
        return check_regex(value)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in value:
            if rule.name in seen:
                raise ValueError(f"expected unique rule names, found {rule.name!r} twice")
            seen.add(rule.name)
        return value

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)
