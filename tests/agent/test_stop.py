"""SIGTERM stops a busy agent: a stage stuck in a call that never returns is abandoned after
``agent.stop_timeout``, the leases are released, and nothing is taken back after the stop."""

from __future__ import annotations

import signal

import pytest

from tests.agent.test_daemon import daemon  # noqa: F401 - the fixture
from tests.conftest import wait_until


@pytest.mark.slow
def test_sigterm_stops_an_agent_whose_stage_is_stuck_and_hands_its_leases_over(daemon, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    stuck = daemon(home=tmp_path / "stuck", state=state, fail_stage="stuck:collect", agent="  stop_timeout: 2s\n")
    wait_until(lambda: (state / "stuck-stage.started").exists(), 60, message="the stuck collect stage under way")
    standby = daemon(home=tmp_path / "standby", state=state)
    standby.wait_log("event=agent.standby", timeout_s=60)

    stuck.proc.send_signal(signal.SIGTERM)
    assert stuck.proc.wait(timeout=60) == 0  # the stuck call alone would take ten minutes
    log = stuck.text()
    assert "event=agent.stop_timeout waited_s=2 note=\"a stage is still running; abandoned\"" in log
    assert "event=agent.stopped abandoned=True" in log
    after_stop = log.split("event=agent.stopping", 1)[1]
    assert "event=lease.taken" not in after_stop  # nothing re-taken once stopping
    standby.wait_log("event=agent.active", timeout_s=30)  # released at the stop, not left to expire
