"""Runs the ``aiops`` CLI with one pipeline stage replaced by one that raises (``STAGE``),
overruns the cycle interval until a cycle start is skipped (``slow:STAGE``), hangs until the
daemon stops (``hang:STAGE``) or is stuck in a call that never returns and never looks at the
stop (``stuck:STAGE``, a hung query).

Used by the daemon tests as ``python tests/agent/faulty_agent.py [slow:]STAGE aiops-args...`` so the
real daemon, in a real process, meets a stage that fails every cycle.
"""

from __future__ import annotations

import sys
import time


def skips(ctx) -> float:
    return ctx.metrics.registry.get_sample_value("aiops_cycles_skipped_total") or 0.0


def main() -> None:
    kind, _, stage_name = sys.argv[1].rpartition(":")

    from agent import pipeline

    # Where the pipeline finds each stage: (the holder, the attribute it calls).
    holders = {"collect": (pipeline.Collector, "collect"), "detect": (pipeline.Engine, "detect"),
               "correlate": (pipeline, "correlate"), "remediate": (pipeline.Remediation, "remediate"),
               "notify": (pipeline, "notify")}
    holder, attr = holders[stage_name]
    real = getattr(holder, attr)

    def explode(owner, *args, **kwargs):
        ctx = getattr(owner, "ctx", owner)  # a stage object, or the Context a stage function takes
        if kind == "hang":  # a stage stuck on something that never answers
            (ctx.state_dir / "hung-stage.started").touch()
            ctx.stopping.wait(120)
            return real(owner, *args, **kwargs)
        if kind == "stuck":  # ten minutes in a call that ignores everything, SIGTERM included
            (ctx.state_dir / "stuck-stage.started").touch()
            time.sleep(600)
        if kind == "slow":  # a stage that overruns the cycle interval
            (ctx.state_dir / "slow-stage.started").touch()  # tests wait for this, not a guess
            # The overrun itself: held until the scheduler has skipped a cycle start behind it
            # (or a stop), so it lasts as long as overrunning takes on this machine.
            started, skipped = time.monotonic(), skips(ctx)
            while skips(ctx) <= skipped and not ctx.stopping.wait(0.05) and time.monotonic() - started < 30:
                pass
            with open(ctx.state_dir / "slow-stage.spans", "a") as spans:
                spans.write(f"{started} {time.monotonic()}\n")
            return real(owner, *args, **kwargs)
        raise RuntimeError(f"injected failure in {stage_name}")

    setattr(holder, attr, explode)
    from agent.cli import cli

    cli.main(args=sys.argv[2:], prog_name="aiops")


if __name__ == "__main__":
    main()
