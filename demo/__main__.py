"""``make demo``: the whole loop with nobody at the keyboard, told as the story on-call would follow.

Starts a real Prometheus over a backfilled history, the demo model service and the agent's daemon;
rolls out a model version whose preprocessing shifts the input features; and shows the agent
detect the drift, correlate it into one incident with the rollout as suspect change, roll the
model back through ansible-runner, verify recovery, resolve, and report MTTD and MTTR. Then it
stops everything it started, leaving the store and the HTML summary in ``.demo/``; or keeps it
running (``--keep``, or ``python -m demo up``) for ``python -m demo inject KIND`` and ``down``.
"""

from __future__ import annotations

import sys

from demo.cli import PROG, demo


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The story's options without the command (python -m demo --fault latency) still mean the story.
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["story", *argv]
    return demo.main(argv, prog_name=PROG, standalone_mode=True) or 0


if __name__ == "__main__":
    sys.exit(main())
