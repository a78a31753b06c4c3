"""One run of the demo story, used by ``make demo``, the end-to-end tests and the e2e benchmark:
start the stack and the real daemon, inject a fault, and follow the incident through the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.clock import utcnow
from agent.errors import AiopsError
from agent.flow.incidents import Episode, Incident
from agent.store import Store
from demo.config import demo_config
from demo.faults import inject
from demo.stack import DemoStack, read_pid, start_service


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """How fast the demo runs: scrape and cycle intervals, verification period and deadline,
    and the resolution of the backfilled history (rate windows span three of its steps)."""

    scrape_s: float = 5.0
    cycle_s: float = 10.0
    verify_s: float = 10.0
    verify_deadline_s: float = 180.0
    history_days: float = 2.5
    history_step_s: float = 10.0
    drift_window_s: float = 30.0
    flap_window_s: float = 60.0
    analysis_interval_s: float = 15.0
    analysis_duration_s: float = 60.0


DEMO = Timing()
FAST = Timing(scrape_s=1.0, cycle_s=2.0, verify_s=4.0, verify_deadline_s=60.0, history_days=1.0,
              history_step_s=5.0, drift_window_s=30.0, flap_window_s=1.0, analysis_interval_s=4.0,
              analysis_duration_s=12.0)


class TimedOut(AiopsError):
    def __init__(self, what: str, timeout_s: float, recent: str = "") -> None:
        super().__init__(f"timed out after {timeout_s:g}s waiting for {what}"
                         + (f"; the agent's latest events:\n{recent}" if recent else ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one injected fault caused: the first episode detected at or after the injection
    (a new incident, or a reopen of one that had just resolved)."""

    incident: Incident
    injected_at: datetime

    @property
    def episode(self) -> Episode:
        found = [e for e in self.incident.episodes if e.detected_at >= self.injected_at]
        if not found:
            raise AiopsError(f"incident #{self.incident.id} has no episode detected after the fault at "
                             f"{self.injected_at.isoformat()}")
        return found[0]

    @property
    def mttd_s(self) -> float:
        """From the fault to its detection."""
        return (self.episode.detected_at - self.injected_at).total_seconds()

    @property
    def mttr_s(self) -> float | None:
        """From the fault to its episode resolved: the time users were hurt."""
        resolved = self.episode.resolved_at
        return None if resolved is None else (resolved - self.injected_at).total_seconds()

    @property
    def onset_error_s(self) -> float:
        """Where the agent says the outage began, less when it did (0 = exact)."""
        return (self.episode.started_at - self.injected_at).total_seconds()


class DemoRun:
    def __init__(self, root: Path, timing: Timing = DEMO, *, token: str = "demo-token-0f3a",
                 runs_per_hour: int = 20, retrain_on_drift: bool = False) -> None:
        self.root = root.resolve()
        self.timing = timing
        self.token = token
        self.runs_per_hour = runs_per_hour
        self.retrain_on_drift = retrain_on_drift
        self.stack = DemoStack(self.root, scrape_interval_s=timing.scrape_s, history_days=timing.history_days,
                               history_step_s=timing.history_step_s)
        self.config_path = self.root / "agent.yaml"
        self.state_dir = self.root / "state"
        self.agent: subprocess.Popen[bytes] | None = None
        self.store: Store | None = None
        self.backfill_s = 0.0
        self._fitted_at_cycle: int | None = None
        self.last_fault = ""

    # -- set-up -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "NOTIFY_SOCKET", "WATCHDOG_"))}
        env["AIOPS_API_TOKEN"] = self.token
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        return env

    def aiops(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent.cli", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, env=self.env(), check=check, timeout=300)

    def start_stack(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.backfill_s = self.stack.prepare()
        self.stack.start()
        t = self.timing
        self.config_path.write_text(demo_config(
            self.stack.info, cycle_s=t.cycle_s, verify_s=t.verify_s, verify_deadline_s=t.verify_deadline_s,
            state_dir=self.state_dir, history_step_s=t.history_step_s, drift_window_s=t.drift_window_s,
            flap_window_s=t.flap_window_s, runs_per_hour=self.runs_per_hour,
            analysis_interval_s=t.analysis_interval_s, analysis_duration_s=t.analysis_duration_s,
            retrain_on_drift=self.retrain_on_drift))
        self.aiops("baseline", "save", "--model", "fraud", "--from", "now-20h", "--to", "now-10m")
        self.store = Store(self.state_dir / "aiops.db")

    def start_agent(self) -> None:
        log = open(self.root / "logs" / "agent.log", "ab")
        # A session of its own: a stack left up (``python -m demo up``) outlives the terminal,
        # whose hangup would reach the agent as SIGHUP (a config reload), not as a stop.
        self.agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(self.config_path)],
                                      stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
        self.stack.info.agent_pid = self.agent.pid
        self.stack.save()

    def wait_fitted(self, timeout_s: float = 120.0) -> None:
        """Until the detectors are fitted and two more cycles have scored live data."""
        self.wait(lambda: self.count("SELECT count(*) FROM detector_state") > 0, timeout_s, "fitted detectors")
        cycles = self.cycles()
        self.wait(lambda: self.cycles() >= cycles + 2, timeout_s, "two scoring cycles")

    def wait_fitted_once(self) -> bool:
        """One look: fitted detectors exist and a cycle has run since (for a progress display)."""
        if self.count("SELECT count(*) FROM detector_state") == 0:
            return False
        if self._fitted_at_cycle is None:
            self._fitted_at_cycle = self.cycles()
        return self.cycles() >= self._fitted_at_cycle + 2

    def recent_events(self, count: int = 12) -> str:
        """The agent log's last ``count`` events other than finished cycles, and its last cycle:
        what a timed-out wait shows, so a failure far from here explains itself."""
        path = self.root / "logs" / "agent.log"
        if not path.exists():
            return ""
        lines = path.read_text(errors="replace").splitlines()
        events = [line for line in lines if "event=cycle.done" not in line][-count:]
        cycles = [line for line in lines if "event=cycle.done" in line][-1:]
        return "\n".join(line[:300] for line in [*events, *cycles])

    def cycles(self) -> int:
        return (self.root / "logs" / "agent.log").read_text(errors="replace").count("event=cycle.done")

    # -- following what happens ----------------------------------------------------------------

    def count(self, sql: str, params: tuple[object, ...] = ()) -> int:
        assert self.store is not None
        return int(self.store.query_one(sql, params)[0])

    def wait(self, predicate: Callable[[], object], timeout_s: float, what: str,
             tick: Callable[[float], None] | None = None) -> object:
        started = time.monotonic()
        while True:
            if self.agent is not None and self.agent.poll() is not None:
                raise AiopsError(f"the agent exited with {self.agent.returncode} while waiting for {what}; "
                                 f"see {self.root / 'logs' / 'agent.log'}")
            value = predicate()
            if value:
                return value
            elapsed = time.monotonic() - started
            if elapsed > timeout_s:
                raise TimedOut(what, timeout_s, self.recent_events())
            if tick is not None:
                tick(elapsed)
            time.sleep(0.2)

    def inject(self, kind: str) -> datetime:
        assert self.store is not None
        at = utcnow()
        self.last_fault = inject(self.root, kind, store=self.store, now=at)
        return at

    def incident_since(self, at: datetime, detector: str | None = None) -> Incident | None:
        """The incident of the first episode detected at or after ``at`` (among incidents with a
        signal of ``detector``): a new incident, or a reopen of one."""
        assert self.store is not None
        row = self.store.query_one(
            "SELECT e.incident_id FROM incident_episodes e WHERE e.detected_at >= ? AND EXISTS (SELECT 1 FROM "
            "incident_signals s WHERE s.incident_id = e.incident_id AND s.detector LIKE ?) "
            "ORDER BY e.detected_at, e.incident_id LIMIT 1", (at.timestamp(), detector or "%"))
        return self.store.get_incident(row[0]) if row else None

    def incident(self, incident_id: int) -> Incident:
        assert self.store is not None
        found = self.store.get_incident(incident_id)
        assert found is not None
        return found

    def runs(self, incident_id: int) -> list[dict[str, object]]:
        assert self.store is not None
        rows = self.store.query("SELECT id, rule, playbook, mode, status, rc, requested_at FROM remediation_runs "
                                "WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [dict(r) for r in rows]

    def outcome(self, incident_id: int, injected_at: datetime) -> Outcome:
        return Outcome(incident=self.incident(incident_id), injected_at=injected_at)

    # -- tear-down ------------------------------------------------------------------------------

    def clear_faults(self) -> None:
        """Make the service healthy again without restarting it (a restart would itself be a
        signal): in-process faults are dropped, a crashed service is started."""
        (self.root / "faults.json").write_text('{"clear": true}')
        (self.root / "models" / "training.json").unlink(missing_ok=True)
        if read_pid(self.root) is None:
            start_service(self.root, self.stack.service_command())
        self.wait(lambda: read_pid(self.root) and not (self.root / "faults.json").exists(), 30, "the service cleared")

    def wait_quiet(self, timeout_s: float = 120.0) -> None:
        """Until no hit has been recorded for the length of a rate window plus two cycles: after a
        fault is cleared, the window still shows it for a while."""
        quiet_s = 3 * self.timing.history_step_s + 2 * self.timing.cycle_s

        def quiet() -> bool:
            last = self.store.query_one("SELECT max(recorded_at) FROM hits")[0] if self.store else None
            return last is None or time.time() - float(last) > quiet_s

        self.wait(quiet, timeout_s, f"{quiet_s:g}s without hits")

    def stop_agent(self, sig: int = signal.SIGTERM) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(sig)
            try:
                self.agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        self.agent = None

    def stop(self) -> None:
        self.stop_agent()
        self.stack.stop()
        self.release()

    def release(self) -> None:
        """Close this process' handle on the store and leave the stack running (``demo up``)."""
        if self.store is not None:
            self.store.close()
            self.store = None

