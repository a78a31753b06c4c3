"""At start: runs left "running" by an agent that died are marked interrupted, never re-run
blindly. Whatever they left behind is killed; the rule's ``on_interrupted`` policy decides what
follows (``page``, the default: the incident escalates; ``retry``: a fresh run goes through the
gates again)."""

from __future__ import annotations

import logging
from pathlib import Path

from agent.flow.runs import Run, RunMode, RunStatus
from agent.log import kv
from remediations import processes
from remediations.engine import ACTOR, Remediator, owner_alive, run_key

log = logging.getLogger(__name__)

def recover(r: Remediator) -> list[Run]:
    """Runs left running by owners that are gone: interrupted (the remediate stage asks once)."""
    out = []

    for run in r.store.list_runs(statuses=[RunStatus.RUNNING]):
        if run.owner and owner_alive(run.owner, live_holders=r.store.leases.live_holders):
            continue  # another live agent process is running it
        left = kill_leftovers(r, run)
        now = r.now()
        run = r.store.update_run(run.id, RunStatus.INTERRUPTED, now=now, ended_at=run.ended_at or now,
                                 expect=[RunStatus.RUNNING],
                                 reason=f"the agent running it ({run.owner or 'unknown'}) stopped mid-run; "
                                        f"not re-run" + (f"; killed {len(left)} leftover processes" if left else ""))
        log.warning(kv("remediation.interrupted", run=run.id, rule=run.rule, incident=run.incident_id))
        out.append(r.keep(run))
        if run.mode is RunMode.CHECK and run.parent_id is not None:
            # The real run waits (pending or approved) behind its check pass: it must not start
            # next cycle as if nothing happened, so it is interrupted too and carries the policy.
            parent = r.store.get_run(run.parent_id)
            if parent is None or parent.status not in (RunStatus.PENDING, RunStatus.APPROVED):
                continue
            run = r.keep(r.store.update_run(parent.id, RunStatus.INTERRUPTED, now=now, ended_at=now,
                                             reason=f"its check pass (run {run.id}) was interrupted; not re-run"))
        _apply_policy(r, run)
    return out


def kill_leftovers(r: Remediator, run: Run) -> list[int]:
    """SIGTERM, then SIGKILL, what the dead agent's run left running: its cgroup's members, or the
    processes its record names; never a service it detached."""
    key = run_key(r.store, run.id)
    killed: list[int] = []
    for tracked in processes.leftovers(key=key, run_dir=Path(run.artifact_dir) if run.artifact_dir else None):
        killed += processes.terminate(tracked, grace_s=processes.KILL_GRACE_S)
    if killed:
        log.warning(kv("remediation.killed_leftovers", run=key, pids=",".join(map(str, killed))))
    return killed


def _apply_policy(r: Remediator, run: Run) -> None:
    rule = r.config.rule(run.rule)
    policy = rule.on_interrupted if rule is not None else "page"
    if policy == "retry" and run.mode is RunMode.APPLY:
        fresh = r.store.create_run(
            incident_id=run.incident_id, rule=run.rule, rule_mode=run.rule_mode, playbook=run.playbook,
            playbook_sha256=run.playbook_sha256, mode=RunMode.APPLY, status=RunStatus.PENDING, targets=run.targets,
            extravars=run.extravars, batch=run.batch, now=r.now(),
            reason=f"retry of interrupted run {run.id} (policy: retry)")
        if run.incident_id is not None:
            r.store.add_incident_event(run.incident_id, kind="remediation", actor=ACTOR, now=r.now(),
                                       message=f"run {run.id} was interrupted (the agent stopped mid-run); "
                                               f"retrying as run {fresh.id} (policy: retry)",
                                       details={"run": run.id, "retry": fresh.id})
        r.keep(fresh)
        return
    r.escalate(run, f"run {run.id} ({run.playbook}) was interrupted: the agent stopped mid-run; "
                    "it was not re-run (policy: page)")
