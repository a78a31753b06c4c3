"""MTTD and MTTR per fault kind, end to end, at a 5 s scrape and a 10 s cycle.

Starts the demo stack (real Prometheus over a backfilled history, the demo model service, the
daemon as a process) and, one after the other, injects each fault. A fault is timed from its
injection to the first episode detected after it (a new incident, or a reopen of one that had
just resolved: the outage it caused) and to that episode's resolution. A time <= 0 cannot be: it
is a measuring fault, and the benchmark exits 1 with the incident's episodes and timeline. A
fault the shipped playbooks cannot fix (stuck-latency) must escalate: it is reported as
escalated, and a resolution of it would be a fault too. Each fault runs ``--repeat`` times;
median and max are reported, with the onset error (where the agent says the outage began, less
the injection).

Then guarded rollouts: a version seven times slower (the demo's v4) rolled out on the canary
``--rollouts`` times. ``rollout_rollback_s``: from its canary starting to serve (the cycle that
deployed it) to its rollback done (the cycle that rolled it back, plus the rollback playbook's
run), median; the analysis promises ``interval x failure_limit`` plus one cycle, and the rollback
playbook's run; ``runs_during_rollout``: remediation runs requested from the rollout's start to
its incident's resolution, all repeats together (the rollback is the remediation: 0).

Run: .venv/bin/python tests/bench/bench_e2e.py [--repeat N] [--faults latency,crash,...|none] [--rollouts N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.flow.incidents import IncidentStatus  # noqa: E402
from agent.flow.rollouts import RolloutStatus  # noqa: E402
from demo.rollout_story import HAND_BUILT, rollout_settled, settled, start_rollout  # noqa: E402
from demo.run import DEMO, DemoRun, Outcome  # noqa: E402

FAULTS = ("latency", "errors", "memory", "disk", "crash", "drift", "stuck-latency")
UNFIXABLE = frozenset({"stuck-latency"})  # no shipped playbook fixes it: it must escalate
TARGET_MTTD_S, TARGET_MTTR_S = 30.0, 90.0


class MeasuringFault(Exception):
    """A figure that cannot be: the benchmark stops and shows why."""


def timeline(run: DemoRun, outcome: Outcome) -> str:
    lines = [f"fault injected at {outcome.injected_at.isoformat()}"]
    for e in outcome.incident.episodes:
        lines.append(f"  episode {e.number}: started {e.started_at.isoformat()} detected {e.detected_at.isoformat()} "
                     f"resolved {e.resolved_at.isoformat() if e.resolved_at else '-'}"
                     + (" (flapping)" if e.flapping else ""))
    assert run.store is not None
    for event in run.store.incident_events(outcome.incident.id):
        lines.append(f"  {event.ts.isoformat()} {event.kind} by {event.actor}: {event.message}")
    return "\n".join(lines)


def escalated(run: DemoRun, outcome: Outcome) -> bool:
    """A run of this outage (not of an earlier one of the same incident) did not fix it."""
    since = outcome.episode.detected_at.timestamp()
    return any(r["status"] == "not_fixed" and r["requested_at"] >= since for r in run.runs(outcome.incident.id))


def one(run: DemoRun, kind: str) -> Outcome:
    at = run.inject(kind)
    incident = run.wait(lambda: run.incident_since(at, "drift" if kind == "drift" else None), 180, f"{kind} detected")
    def ended() -> bool:
        outcome = run.outcome(incident.id, at)
        return outcome.episode.resolved_at is not None or escalated(run, outcome)

    run.wait(ended, 300, f"{kind} resolved or escalated")
    outcome = run.outcome(incident.id, at)
    problems = []
    if outcome.mttd_s <= 0:
        problems.append(f"MTTD {outcome.mttd_s:.1f}s")
    if outcome.mttr_s is not None and outcome.mttr_s <= 0:
        problems.append(f"MTTR {outcome.mttr_s:.1f}s")
    if kind in UNFIXABLE and outcome.mttr_s is not None:
        problems.append("resolved although no playbook fixes it")
    if problems:
        raise MeasuringFault(f"{kind} on incident #{incident.id}: {', '.join(problems)}\n{timeline(run, outcome)}")
    run.clear_faults()
    run.wait_quiet()  # the next fault must open an episode of its own
    if run.incident(incident.id).status is not IncidentStatus.RESOLVED:
        run.aiops("incidents", "resolve", str(incident.id), "--reason", "benchmark tear-down")
    return outcome


def slow_rollout(run: DemoRun) -> tuple[float, float, int]:
    """(seconds from the canary serving to the rollback done, of which the rollback playbook's
    run, remediation runs meanwhile) of one rollout of the slow version; a rollout that is not
    rolled back is a measuring fault."""
    assert run.store is not None
    rollout_id = start_rollout(run, "v4", override_gate=HAND_BUILT)
    done = run.wait(lambda: rollout_settled(run, rollout_id), 180, "the slow rollout settled")
    if done.status is not RolloutStatus.ROLLED_BACK or done.analysis_started_at is None or done.ended_at is None:
        raise MeasuringFault(f"rollout {rollout_id} of v4 ended {done.status}, not rolled back")
    # The steps are dated by their cycle; the rollback playbook's own run comes on top of that.
    (entry,) = [e for e in run.store.audit_entries(since=done.created_at) if e.action == "rollout.rolled_back"
                and e.subject == f"rollout:{rollout_id}"]
    playbook_s = float(entry.details["playbook"]["duration_s"])
    rolled_back_s = (done.ended_at - done.analysis_started_at).total_seconds() + playbook_s
    if rolled_back_s <= 0 or playbook_s <= 0:
        raise MeasuringFault(f"rollout {rollout_id}: rolled back {rolled_back_s:.1f}s after its canary served")
    incident = run.wait(lambda: settled(run, done.incident_id), 180, "the rollout's incident resolved")
    during = [r for r in run.store.list_runs() if done.created_at <= r.requested_at <= incident.resolved_at]
    run.wait_quiet()
    return rolled_back_s, playbook_s, len(during)


def settle_before_faults(run: DemoRun) -> int:
    """Resolve what opened before any fault (a false alarm at start-up would otherwise hold the
    first fault's signals in an open incident: no episode of its own); returns how many."""
    run.wait_quiet()
    assert run.store is not None
    opened = [i for i in run.store.list_incidents() if i.is_open]
    for incident in opened:
        run.aiops("incidents", "resolve", str(incident.id), "--reason", "benchmark set-up: before any fault")
    return len(opened)


def spread(values: list[float]) -> dict[str, float] | None:
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1)} if values else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--rollouts", type=int, default=3)
    args = parser.parse_args()
    kinds = [] if args.faults == "none" else args.faults.split(",")
    unknown = sorted(set(kinds) - set(FAULTS))
    if unknown:
        parser.error(f"unknown faults {', '.join(unknown)}; expected some of {', '.join(FAULTS)}")
    figures: dict[str, dict[str, object]] = {}
    before = 0
    rollbacks: list[float] = []
    playbooks: list[float] = []
    runs_during = 0
    with tempfile.TemporaryDirectory() as tmp:
        # Seven faults, three times each, within an hour: well past the demo's rate limit of 10
        # runs per target an hour, which would hold the later fixes back (the limit has tests of
        # its own; this measures detection and repair).
        run = DemoRun(Path(tmp) / "demo", DEMO, runs_per_hour=200)
        try:
            run.start_stack()
            run.start_agent()
            run.wait_fitted(timeout_s=300)
            before = settle_before_faults(run)
            print(f"incidents opened before any fault (false alarms at start-up): {before}", flush=True)
            for kind in kinds:
                mttd, mttr, onset, stuck = [], [], [], 0
                for i in range(args.repeat):
                    outcome = one(run, kind)
                    r = outcome.mttr_s
                    print(f"{kind} #{i + 1}: MTTD {outcome.mttd_s:.1f}s, "
                          f"MTTR {'escalated, not fixed' if r is None else f'{r:.1f}s'}, "
                          f"onset error {outcome.onset_error_s:+.1f}s (episode {outcome.episode.number} "
                          f"of incident #{outcome.incident.id})", flush=True)
                    mttd.append(outcome.mttd_s)
                    onset.append(outcome.onset_error_s)
                    if r is None:
                        stuck += 1
                    else:
                        mttr.append(r)
                figures[kind] = {"mttd_s": spread(mttd), "mttr_s": spread(mttr), "escalated": stuck,
                                 "onset_error_s": spread(onset)}
            for i in range(args.rollouts):
                seconds, playbook_s, ran = slow_rollout(run)
                rollbacks.append(seconds)
                playbooks.append(playbook_s)
                runs_during += ran
                print(f"slow rollout #{i + 1}: rolled back {seconds:.1f}s after its canary served ({seconds - playbook_s:.1f}s "
                      f"to the cycle that rolled it back, {playbook_s:.1f}s the rollback playbook); {ran} remediation "
                      "runs meanwhile", flush=True)
        except MeasuringFault as fault:
            print(f"measuring fault: {fault}", file=sys.stderr)
            return 1
        finally:
            run.stop()
    print(f"scrape {DEMO.scrape_s:g}s, cycle {DEMO.cycle_s:g}s, verify period {DEMO.verify_s:g}s; "
          f"median and max over {args.repeat} run(s); targets MTTD <= {TARGET_MTTD_S:g}s, MTTR <= {TARGET_MTTR_S:g}s "
          f"for what the playbooks fix, escalation for what they cannot")
    for kind, f in figures.items():
        d, r = f["mttd_s"], f["mttr_s"]
        print(f"  {kind:13s} MTTD {d['median']}s (max {d['max']}s)  "
              + (f"MTTR {r['median']}s (max {r['max']}s)" if r else "MTTR -") + f"  escalated {f['escalated']}")
    promised = DEMO.analysis_interval_s * 2 + DEMO.cycle_s  # the demo's failure_limit is 2
    rollback = round(statistics.median(rollbacks), 1) if rollbacks else None
    if rollbacks:
        print(f"slow rollout: rolled back {rollback}s (median of {len(rollbacks)}, max {max(rollbacks):.1f}s) after "
              f"its canary served; promised interval {DEMO.analysis_interval_s:g}s x failure limit 2 + one cycle "
              f"{DEMO.cycle_s:g}s = {promised:g}s, plus the rollback playbook's run; {runs_during} remediation runs "
              "during the rollouts")
    playbook = round(statistics.median(playbooks), 1) if playbooks else None
    print(json.dumps({"bench": "e2e", "scrape_s": DEMO.scrape_s, "cycle_s": DEMO.cycle_s, "repeat": args.repeat,
                      "incidents_before_faults": before, "faults": figures, "rollout_rollback_s": rollback,
                      "rollback_playbook_s": playbook, "rollout_rollback_promised_s": promised,
                      "runs_during_rollout": runs_during if rollbacks else None, "rollouts": len(rollbacks)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
