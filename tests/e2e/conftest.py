"""The real demo stack for end-to-end modules: a real Prometheus, the demo model service and
the daemon as a process, started once per module (its scenarios run in order on it)."""

from __future__ import annotations

import pytest

from demo.run import FAST, DemoRun


@pytest.fixture(scope="module")
def demo(request, tmp_path_factory):
    run = DemoRun(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]), FAST)
    try:
        run.start_stack()
        run.start_agent()
        run.wait_fitted()
        yield run
    finally:
        run.stop()
