"""A step of the wall clock (NTP, a VM resumed) changes neither when cycles run nor whether
``/healthz`` calls them stale: both are timed on the monotonic clock. The scheduler is driven by
an injected monotonic clock here; a real agent, by its own, while its wall clock is stepped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.clock import ManualMonotonic
from agent.schedule import Scheduler
from tests.conftest import free_port, wait_until
from tests.fixtures.fleet import AgentProcess

TOKEN = "tok-5d0e9b77c2a1f346"


class Counting:
    """A job that counts its starts; ``hold`` keeps a start running until released."""

    def __init__(self) -> None:
        self.starts = 0
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self) -> None:
        self.starts += 1
        self.hold.wait(30)


@pytest.fixture
def scheduled() -> Iterator[tuple[Scheduler, ManualMonotonic, list[str]]]:
    clock = ManualMonotonic(500.0)
    skipped: list[str] = []
    scheduler = Scheduler(monotonic=clock, on_skipped=lambda name, _: skipped.append(name))
    yield scheduler, clock, skipped
    scheduler.stop()


def run_in_thread(scheduler: Scheduler) -> threading.Thread:
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    return thread


def test_jobs_start_by_the_monotonic_clock_and_an_overrun_skips_instead_of_stacking(scheduled):
    scheduler, clock, skipped = scheduled
    cycle, retention = Counting(), Counting()
    scheduler.add("cycle", cycle, interval_s=60)
    scheduler.add("retention", retention, interval_s=3600, first_in_s=3600)
    run_in_thread(scheduler)
    wait_until(lambda: cycle.starts == 1, 10, message="the first cycle at once")
    clock.advance(59)
    seen = scheduler.rounds
    wait_until(lambda: scheduler.rounds >= seen + 2, 10, message="the loop to read the clock again")
    assert cycle.starts == 1 and retention.starts == 0  # 59 s: nothing due yet
    clock.advance(1)
    wait_until(lambda: cycle.starts == 2, 10, message="the second cycle after 60 s of the monotonic clock")

    cycle.hold.clear()  # the next run overruns
    clock.advance(60)
    wait_until(lambda: cycle.starts == 3, 10, message="the third cycle")
    clock.advance(60)
    wait_until(lambda: skipped == ["cycle"], 10, message="the fourth start skipped, not stacked")
    assert cycle.starts == 3
    cycle.hold.set()
    clock.advance(3600 - 180)
    wait_until(lambda: retention.starts == 1 and cycle.starts == 4, 10, message="retention after its first hour")


def test_run_now_starts_a_job_at_once_and_reschedule_changes_its_interval(scheduled):
    scheduler, clock, _ = scheduled
    cycle = Counting()
    scheduler.add("cycle", cycle, interval_s=60)
    run_in_thread(scheduler)
    wait_until(lambda: cycle.starts == 1, 10, message="the first cycle")
    clock.advance(10)
    scheduler.run_now("cycle")  # a standby that just took its shard's lease
    wait_until(lambda: cycle.starts == 2, 10, message="a cycle at once")
    scheduler.reschedule("cycle", 5)
    clock.advance(5)
    wait_until(lambda: cycle.starts == 3, 10, message="a cycle 5 s later")


def agent_config(port: int) -> str:
    return (f"agent: {{interval: 5s, unhealthy_after: 100}}\n"
            f'http: {{port: {port}, token: "${{AIOPS_API_TOKEN}}"}}\n'
            "sources: {kind: scrape, scrape: {targets: []}}\n")


@pytest.mark.slow
def test_a_running_agent_whose_wall_clock_is_stepped_keeps_cycling_and_stays_healthy(tmp_path: Path,
                                                                                       subprocess_env):
    offset = tmp_path / "clock-offset"
    port = free_port()
    agent = AgentProcess(tmp_path / "agent", subprocess_env, agent_config(port), shard="0/1", port=port,
                         token=TOKEN, faults={"FAULT_CLOCK_FILE": str(offset)})
    try:
        agent.wait_event("cycle.done", times=2, timeout_s=90)
        # Ten minutes ahead (past stale_after, 60 s), then ten minutes behind the system's clock:
        # /healthz says ok at once, before the next cycle, and cycles go on every 5 s.
        for step in ("600", "-600"):
            offset.write_text(step)
            health = agent.get("/healthz")
            assert (health.status_code, health.json()["status"], health.json()["reason"]) == (200, "ok", "")
            agent.wait_event("cycle.done", times=len(agent.events("cycle.done")) + 2, timeout_s=60)
        assert agent.get("/healthz").json()["status"] == "ok"
    finally:
        agent.kill()
        agent.stop()
