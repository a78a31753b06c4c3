"""Fixtures for model operations: a models dir laid out as the demo's, the repository's real
rollout, promote, rollback and retrain playbooks run by ansible-runner against localhost, a
real Prometheus answering the analysis queries, and a Context whose clock is injected."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.clock import ManualClock
from agent.config import load_config
from agent.context import Context
from tests.conftest import REPO

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
GOOD = {"latency": "vector(0.06)", "errors": "vector(0.004)"}
BAD_LATENCY = {"latency": "vector(0.45)", "errors": "vector(0.004)"}
NO_DATA = {"latency": 'no_such_metric{model="fraud"}', "errors": "vector(0.004)"}


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """versions v1, v2 (serving) and v4, a history of v1 and v2, current -> v2."""
    d = tmp_path / "models"
    for version in ("v1", "v2", "v4"):
        (d / "versions" / version).mkdir(parents=True)
        (d / "versions" / version / "model.json").write_text(json.dumps({"version": version}))
    (d / "current").symlink_to("versions/v2")
    (d / "history").write_text("v1\nv2\n")
    return d


def served(models_dir: Path) -> str:
    return (models_dir / "current").resolve().name


def model_yaml(models_dir: Path, queries: dict[str, str], *, prometheus_url: str, on_failure: str = "auto",
               retrain: str = "", failure_limit: int = 2, trainer_args: tuple[str, ...] = (),
               serving: bool = False) -> str:
    """The model ``fraud`` on ``models_dir``; ``serving``: the agent reads what serves from its
    ``current`` link and the versions there from ``versions/``."""
    trainer = json.dumps([sys.executable, "-m", "demo.train", "--rows", "1500", *trainer_args])
    read = textwrap.indent(f"serving: {{link: {models_dir / 'current'}, versions: {models_dir / 'versions'}}}\n",
                           " " * 4) if serving else ""
    return textwrap.dedent(f"""\
        models:
          - name: fraud
            rollout_playbook: rollout_model.yml
            promote_playbook: promote_model.yml
            rollback_playbook: rollback_model.yml
            on_failure: {on_failure}
            env: {{PYTHONPATH: "{REPO}"}}
            vars:
              models_dir: {models_dir}
              trainer_argv: {trainer}
            analysis:
              interval: 30s
              duration: 90s
              failure_limit: {failure_limit}
              prometheus_url: {prometheus_url}
              metrics:
                - name: latency_p95
                  query: '{queries["latency"]}'
                  success: "< 0.2"
                  failure: ">= 0.3"
                - name: error_rate
                  query: '{queries["errors"]}'
                  success: "< 0.02"
                  failure: ">= 0.05"
        """) + read + retrain


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[Callable[..., Context]]:
    made: list[Context] = []

    def make(models_yaml: str, playbook_dir: Path = REPO / "playbooks") -> Context:
        text = (f"agent:\n  state_dir: {tmp_path / 'state'}\nhttp:\n  token: s3cret-token\n  port: 0\n"
                f"remediation:\n  playbook_dir: {playbook_dir}\n" + models_yaml)
        path = tmp_path / "agent.yaml"
        path.write_text(text)
        ctx = Context.create(load_config(path), tmp_path / "state", clock=ManualClock(T0))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.store.close()
