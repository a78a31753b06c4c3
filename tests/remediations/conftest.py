"""Fixtures for remediation tests: a throw-away playbook dir, a Context over a real store, real
incidents, and cycles carrying hits and samples. Every ansible run is real (connection local)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agent.clock import ManualClock
from agent.config import load_config
from agent.context import Context
from agent.flow.detection import Detection
from agent.flow.incidents import Incident, Signal
from agent.flow.runs import Run
from agent.flow.samples import Samples, SeriesInfo
from detectors.base import Hit
from remediations import Remediation, latest

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def header(check_safe: bool = False) -> str:
    return ("# fixes: a test fault\n# vars: dest, content, label_value\n# idempotent: yes\n"
            f"# check_mode_safe: {'yes' if check_safe else 'no'}\n")


# Writes "<run id> <host>" to runs_log on a real run (a command is skipped in check mode): one
# append (O_APPEND), so runs in parallel processes never lose each other's line, as lineinfile's
# read-and-rewrite can. It fails when fail_flag exists or the host is fail_on, copies content (a label) to dest.
TOUCH = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: Fail on purpose
      ansible.builtin.fail:
        msg: "failing on {{ inventory_hostname }}"
      when: (fail_on | default('')) == inventory_hostname or (fail_flag is defined and fail_flag is exists)
    - name: Record the run
      ansible.builtin.command:
        argv: [/bin/sh, -c, 'printf "%s\\n" "$1" >> "$0"', "{{ runs_log }}", "{{ aiops_run_id }} {{ inventory_hostname }}"]
    - name: Write the content
      ansible.builtin.copy:
        dest: "{{ dest }}"
        content: "{{ content | default(label_value | default('')) }}"
    - name: Show the token
      ansible.builtin.debug:
        msg: "token {{ api_token | default('none') }}"
"""

SLEEP = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the run
      ansible.builtin.command:
        argv: [/bin/sh, -c, 'printf "%s\\n" "$1" >> "$0"', "{{ runs_log }}", "{{ aiops_run_id }}"]
    - name: Sleep
      ansible.builtin.command:
        argv: [sleep, "{{ sleep_s }}"]
"""

# Records the run, then holds until the test creates the file ``release`` (at most 120 s).
HOLD = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the run
      ansible.builtin.command:
        argv: [/bin/sh, -c, 'printf "%s\\n" "$1" >> "$0"', "{{ runs_log }}", "{{ aiops_run_id }}"]
    - name: Hold until released
      ansible.builtin.command:
        argv: [timeout, "120", /bin/sh, -c, 'while [ ! -e "$0" ]; do sleep 0.05; done', "{{ release }}"]
"""

FAIL_IN_CHECK = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: Refuse check mode
      ansible.builtin.fail:
        msg: "check pass fails"
      when: ansible_check_mode
    - name: Write
      ansible.builtin.copy:
        dest: "{{ dest }}"
        content: "changed"
"""

ROLLBACK = """---
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: "{{ rollback_marker }}"
        content: "rolled back {{ aiops_run_id }}"
"""


@pytest.fixture
def pbdir(tmp_path: Path) -> Path:
    d = tmp_path / "playbooks"
    d.mkdir()
    (d / "touch.yml").write_text(header(check_safe=True) + TOUCH)
    (d / "touch_direct.yml").write_text(header(check_safe=False) + TOUCH)
    (d / "sleep.yml").write_text(header() + SLEEP)
    (d / "hold.yml").write_text(header() + HOLD)
    (d / "fail_in_check.yml").write_text(header(check_safe=True) + FAIL_IN_CHECK)
    (d / "rollback.yml").write_text(header() + ROLLBACK)
    return d


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def make_ctx(tmp_path: Path, pbdir: Path, work: Path) -> Iterator[Callable[..., Context]]:
    """A Context over a real store in tmp_path/state, from the ``remediation:`` YAML given. Its
    clock is a ``ManualClock`` at ``T0``: the HTTP routes and the CLI (``obj=Settings(clock=…)``)
    decide with it, never with today's date."""
    made: list[Context] = []

    def make(remediation_yaml: str, *, inventory: str | None = None) -> Context:
        inv = ""
        if inventory is not None:
            (tmp_path / "inventory.ini").write_text(inventory)
            inv = f"  inventory: {tmp_path / 'inventory.ini'}\n"
        text = (f"agent:\n  state_dir: {tmp_path / 'state'}\nhttp:\n  token: s3cret-token\n  port: 0\n"
                f"remediation:\n  playbook_dir: {pbdir}\n{inv}" + textwrap.indent(textwrap.dedent(remediation_yaml), "  "))
        path = tmp_path / "agent.yaml"
        path.write_text(text)
        ctx = manual_context(load_config(path), tmp_path / "state")
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        _STAGES.pop(id(ctx), None)
        ctx.store.close()


# The remediate stage of each Context (by id), as its pipeline holds one: what it audited stays
# remembered from cycle to cycle.
_STAGES: dict[int, Remediation] = {}


def remediate(ctx: Context, seen: Detection) -> list[Run]:
    """One cycle of ``ctx``'s remediate stage."""
    stage = _STAGES.get(id(ctx))
    if stage is None or stage.ctx is not ctx:  # a new Context where a closed one was
        stage = _STAGES[id(ctx)] = Remediation(ctx)
    return stage.remediate(seen)


def local_inventory(*hosts: str) -> str:
    from remediations.runner import local_python

    return "".join(f"{h} ansible_connection=local ansible_python_interpreter={local_python()}\n" for h in hosts)


def signal(series_id: str = 'latency{host="h1"}', detector: str = "seasonal", **labels: str) -> Signal:
    return Signal(series_id=series_id, detector=detector, metric=series_id.split("{")[0], labels=labels,
                  first_at=T0, last_at=T0, hits=1)


def open_incident(ctx: Context, labels: dict[str, str] | None = None, *, signals: Sequence[Signal] = (),
                  now: datetime = T0, severity: str = "warning") -> Incident:
    """An incident with ``labels``, which its signals (one by default) carry too, under their own:
    the correlator gives an incident the labels of one of its signals, and a rule matches signals."""
    labels = labels or {"service": "api"}
    signals = tuple(replace(s, labels={**labels, **s.labels}) for s in (tuple(signals) or (signal(),)))
    return ctx.store.open_incident(severity=severity, title="latency up", labels=labels,
                                   started_at=now, now=now, signals=signals)


def cycle(now: datetime, *, quiet: Sequence[str] = (), firing: Sequence[Signal] = (),
          gaps: Sequence[str] = ()) -> Detection:
    """What the detection of a cycle at ``now`` saw whose samples have data for ``quiet`` and ``firing`` series and whose
    hits are one per ``firing`` signal; ``gaps`` have no data."""
    columns = list(dict.fromkeys([*quiet, *(s.series_id for s in firing), *gaps]))
    index = pd.DatetimeIndex([now], tz="UTC", name="ts")
    values = pd.DataFrame({c: [float("nan") if c in gaps else 1.0] for c in columns}, index=index, dtype="float64")
    samples = Samples(values=values, series={c: SeriesInfo(series_id=c, metric=c.split("{")[0]) for c in columns},
                      gaps=frozenset(gaps))
    hits = [Hit(series_id=s.series_id, detector=s.detector, ts=now, value=9.0, score=5.0) for s in firing]
    return Detection(at=now, samples=samples, hits=hits)


def manual_context(config: Any, state_dir: Path) -> Context:
    """A Context whose wall clock is a ``ManualClock`` at ``T0`` and whose monotonic clock moves
    with it (``run_cycle`` sets both to the cycle's time), as they do on a host whose clock is
    not stepped."""
    clock = ManualClock(T0)
    return Context.create(config, state_dir, clock=clock, monotonic=lambda: clock().timestamp())


def run_cycle(ctx: Context, now: datetime, **kwargs: Any) -> list[Run]:
    """One remediate stage at ``now``, and the ends of the playbook runs it started beside the
    cycle: the runs both changed, as the store has them once the workers are done."""
    if isinstance(ctx.clock, ManualClock):
        ctx.clock.set(now)
    runs = remediate(ctx, cycle(now, **kwargs))
    assert ctx.workers.join(timeout_s=120), f"runs still under way: {ctx.workers.under_way()}"
    return latest(ctx, [*runs, *ctx.workers.finished()])


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def audit(ctx: Context, action: str) -> list[Any]:
    return [e for e in ctx.store.audit_entries() if e.action == action]


def run_pids(store: Any, run: Run) -> list[int]:
    """The processes of ``run`` still running, as a new agent process would find them."""
    from remediations import processes
    from remediations.engine import run_key

    run_dir = Path(run.artifact_dir) if run.artifact_dir else None
    return sorted({pid for tracked in processes.leftovers(key=run_key(store, run.id), run_dir=run_dir)
                   for pid in tracked.pids()})


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
