"""The fault story ``python -m demo`` tells: a fault injected into the demo stack, and the agent
detecting, correlating, remediating, verifying and measuring it, narrated as on-call would follow it."""

from __future__ import annotations

from rich.console import Console

from agent.flow.incidents import IncidentStatus
from agent.incidents.summary import title_of
from demo.run import DemoRun

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
