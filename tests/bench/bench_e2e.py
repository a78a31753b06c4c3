"""MTTD and MTTR per fault kind, end to end, at a 5 s scrape and a 10 s cycle.

Starts the demo stack (real Prometheus over a backfilled history, the demo model service, the
daemon as a process) and, one after the other, injects the latency, crash and drift faults. MTTD
is from the fault to the incident opened; MTTR from the fault to the incident resolved by the
verified remediation. Each fault runs ``--repeat`` times; medians are reported.

Run: .venv/bin/python tests/bench/bench_e2e.py [--repeat N] [--faults latency,crash,drift]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.demo.run import DEMO, DemoRun  # noqa: E402
from agent.incidents.model import IncidentStatus  # noqa: E402


def one(run: DemoRun, kind: str) -> tuple[float, float | None]:
    at = run.inject(kind)
    incident = run.wait(lambda: run.incident_since(at, "drift" if kind == "drift" else None), 180, f"{kind} detected")
    run.wait(lambda: run.incident(incident.id).status is IncidentStatus.RESOLVED
             or any(r["status"] == "not_fixed" for r in run.runs(incident.id)), 300, f"{kind} resolved")
    outcome = run.outcome(incident.id, at)
    run.clear_faults()
    run.wait_quiet()  # the next fault must open an incident of its own
    if run.incident(incident.id).status is not IncidentStatus.RESOLVED:
        run.aiops("incidents", "resolve", str(incident.id), "--reason", "benchmark tear-down")
    return outcome.mttd_s, outcome.mttr_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--faults", default="latency,crash,drift")
    args = parser.parse_args()
    kinds = args.faults.split(",")
    figures: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run = DemoRun(Path(tmp) / "demo", DEMO)
        try:
            run.start_stack()
            run.start_agent()
            run.wait_fitted(timeout_s=300)
            for kind in kinds:
                mttd, mttr = [], []
                for i in range(args.repeat):
                    d, r = one(run, kind)
                    print(f"{kind} #{i + 1}: MTTD {d:.1f}s, MTTR {'not fixed' if r is None else f'{r:.1f}s'}")
                    mttd.append(d)
                    if r is not None:
                        mttr.append(r)
                figures[kind] = {"mttd_s": round(statistics.median(mttd), 1),
                                 "mttr_s": round(statistics.median(mttr), 1) if mttr else None}
        finally:
            run.stop()
    print(f"scrape {DEMO.scrape_s:g}s, cycle {DEMO.cycle_s:g}s, verify period {DEMO.verify_s:g}s; "
          f"medians over {args.repeat} run(s); targets MTTD <= 30s, MTTR <= 90s")
    for kind, f in figures.items():
        print(f"  {kind:8s} MTTD {f['mttd_s']}s  MTTR {f['mttr_s']}s")
    print(json.dumps({"bench": "e2e", "scrape_s": DEMO.scrape_s, "cycle_s": DEMO.cycle_s, "faults": figures}))


if __name__ == "__main__":
    main()
