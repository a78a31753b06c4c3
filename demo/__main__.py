"""``make demo``: the whole loop with nobody at the keyboard, told as the story on-call would follow.

Starts a real Prometheus over a backfilled history, the demo model service and the agent's daemon;
rolls out a model version whose preprocessing shifts the input features; and shows the agent
detect the drift, correlate it into one incident with the rollout as suspect change, roll the
model back through ansible-runner, verify recovery, resolve, and report MTTD and MTTR. Then it
stops everything it started, leaving the store and the HTML summary in ``.demo/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from agent.errors import AiopsError
from agent.flow.incidents import IncidentStatus
from agent.incidents.summary import title_of
from demo.run import DEMO, FAST, DemoRun

console = Console(highlight=False)


def say(step: str, text: str) -> None:
    console.print(f"[bold cyan]{step}[/] {text}")


def waiting(run: DemoRun, what: str, predicate, timeout_s: float):  # type: ignore[no-untyped-def]
    with console.status(f"  {what} …") as status:
        def tick(elapsed: float) -> None:
            status.update(f"  {what} … {elapsed:4.0f}s (agent cycle every {run.timing.cycle_s:g}s)")
        return run.wait(predicate, timeout_s, what, tick=tick)


def story(run: DemoRun, fault: str) -> int:
    say("[1/6]", "Backfilling history and starting Prometheus, node_exporter and the fraud model service (v2) …")
    run.start_stack()
    info = run.stack.info
    console.print(f"      Prometheus {info.prometheus_url} (scrape every {info.scrape_interval_s:g}s), "
                  f"model service {info.service_url}, history backfilled in {run.backfill_s:.1f}s")
    say("[2/6]", f"Starting the agent (a cycle every {run.timing.cycle_s:g}s) and saving the model's training baseline …")
    run.start_agent()
    waiting(run, "fitting detectors on the history", run.wait_fitted_once, 180)
    console.print("      detectors fitted; the agent is watching latency, errors, memory, disk and input drift")

    say("[3/6]", f"Injecting a fault ({fault}) …")
    at = run.inject(fault)
    console.print(f"      {run.last_fault}")
    detector = "drift" if fault == "drift" else None
    incident = waiting(run, "waiting for the agent to notice", lambda: run.incident_since(at, detector), 120)
    console.print(f"      incident #{incident.id} opened {run.outcome(incident.id, at).mttd_s:.0f}s after the fault: "
                  f"[bold]{title_of(run.store, incident)}[/]")

    say("[4/6]", "Remediation: the matching rule runs its playbook through ansible-runner (check mode first) …")
    waiting(run, "waiting for the playbook to run",
            lambda: any(r["mode"] == "apply" and r["status"] not in ("pending", "running") for r in run.runs(incident.id)), 180)
    for r in run.runs(incident.id):
        console.print(f"      run #{r['id']}: rule {r['rule']}, {r['playbook']} in {r['mode']} mode → {r['status']} (rc {r['rc']})")

    say("[5/6]", "Verifying that the model recovered …")
    done = waiting(run, "watching the incident's signals",
                   lambda: run.incident(incident.id).status is IncidentStatus.RESOLVED
                   or any(r["status"] == "not_fixed" for r in run.runs(incident.id)), 240)
    outcome = run.outcome(incident.id, at)
    if outcome.incident.status is IncidentStatus.RESOLVED:
        console.print(f"      [green]verified and resolved[/]: MTTD {outcome.mttd_s:.0f}s, MTTR {outcome.mttr_s:.0f}s "
                      f"(from the fault to resolved)")
    else:
        console.print("      [red]not fixed[/]: the incident escalated and stays open")

    say("[6/6]", "The incident summary, as on-call reads it (aiops incidents show):")
    console.print(run.aiops("incidents", "show", str(incident.id)).stdout, markup=False, highlight=False)
    html = run.root / f"incident-{incident.id}.html"
    html.write_text(run.aiops("incidents", "show", str(incident.id), "--format", "html").stdout)
    console.print(f"      HTML summary: {html}\n      store: {run.state_dir / 'aiops.db'}\n"
                  f"      agent log: {run.root / 'logs' / 'agent.log'}")
    return 0 if done and outcome.incident.status is IncidentStatus.RESOLVED else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["inject"]:  # python -m demo inject KIND: break the running stack (demo.cli)
        from demo.cli import demo

        demo.main(argv, prog_name="python -m demo")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Against a running stack: python -m demo inject KIND [--root DIR].")
    parser.add_argument("--root", type=Path, default=Path(".demo"))
    parser.add_argument("--fault", default="drift",
                        choices=["drift", "latency", "crash", "errors", "memory", "disk", "stuck-latency"])
    parser.add_argument("--story", default="fault", choices=["fault", "rollout"],
                        help="fault: one injected fault, detected and remediated; rollout: guarded rollouts, "
                             "retraining behind a gate and the model's governance report")
    parser.add_argument("--fast", action="store_true", help="1 s scrapes and 2 s cycles (as the tests run)")
    args = parser.parse_args(argv)
    shutil.rmtree(args.root, ignore_errors=True)
    run = DemoRun(args.root, FAST if args.fast else DEMO, retrain_on_drift=args.story == "rollout")
    console.print("[bold]aiops-agent demo[/]: a fraud-detection model served on this machine, watched by the agent.\n")
    started = time.monotonic()
    try:
        if args.story == "rollout":
            from demo import rollout_story

            code = rollout_story.story(run, say, lambda text: console.print(text, highlight=False), waiting)
        else:
            code = story(run, args.fault)
    except AiopsError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        code = 1
    finally:
        console.print("\nStopping everything the demo started …")
        run.stop()
    console.print(f"Done in {time.monotonic() - started:.0f}s.")
    return code


if __name__ == "__main__":
    sys.exit(main())
