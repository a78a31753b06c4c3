"""Benchmark: the store statements one cycle runs after detection, with 50 incidents open.

50 series, each on a host and service of its own (so none correlate), fire once at T0: 50
incidents open. The next cycle they all fire again, and the stages that read and write the store
after detection run as the leader runs them: correlate, share, gather, remediate (no rules),
rollouts, notify. Every SQL statement of that cycle on the store's connection (SQLite's trace
callback) is counted, by its first word; ``store_queries_per_cycle`` is their sum, without the
transaction statements (BEGIN, COMMIT, SAVEPOINT, RELEASE).

Run: .venv/bin/python tests/bench/bench_store_queries.py [--incidents N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.config import parse_config  # noqa: E402
from agent.context import Context  # noqa: E402
from agent.flow.detection import Detection  # noqa: E402
from agent.incidents import correlate  # noqa: E402
from agent.incidents.observations import from_other_shards, share  # noqa: E402
from agent.notify import notify  # noqa: E402
from agent.pipeline import Pipeline  # noqa: E402
from agent.rollouts import roll  # noqa: E402
from agent.store import open_store  # noqa: E402
from detectors.base import Direction, Hit  # noqa: E402

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
TRANSACTION = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def hits(n: int, at: datetime) -> list[Hit]:
    return [Hit(series_id=f"latency{{host=h{i},service=s{i}}}", detector="seasonal", ts=at, value=9.0, score=12.0,
                direction=Direction.UP, expected=1.0, lower=0.5, upper=1.5, metric="latency",
                labels={"host": f"h{i}", "service": f"s{i}"}, explanation="far above its band")
            for i in range(n)]


def after_detection(ctx: Context, pipeline: Pipeline, seen: Detection) -> None:
    correlate(ctx, seen)
    share(ctx, seen)
    seen = from_other_shards(ctx, seen)
    pipeline.remediation.remediate(seen)
    roll(ctx, seen.at)
    notify(ctx, seen.at)


def main(n: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-queries-"))
    config = parse_config(f"agent:\n  state_dir: {state}\nincidents:\n  max_new_per_cycle: {n + 10}\n")
    ctx = Context(config=config, store=open_store(state), state_dir=state)
    pipeline = Pipeline(ctx, report=False)
    after_detection(ctx, pipeline, Detection(at=T0, hits=hits(n, T0)))
    opened = ctx.store.count_open_incidents()
    if opened != n:
        raise SystemExit(f"expected {n} open incidents after the first cycle, found {opened}")
    at = T0 + timedelta(seconds=config.agent.interval)
    statements: list[str] = []
    ctx.store.conn.set_trace_callback(statements.append)
    after_detection(ctx, pipeline, Detection(at=at, hits=hits(n, at)))
    ctx.store.conn.set_trace_callback(None)
    kinds = Counter(s.split(None, 1)[0].upper() for s in statements if s.strip())
    queries = sum(count for kind, count in kinds.items() if kind not in TRANSACTION)
    if queries <= 0:
        raise SystemExit("no statement was traced: the figure would be meaningless")
    print(f"open incidents: {opened}; statements after detection in one cycle: {queries} "
          f"({', '.join(f'{k} {v}' for k, v in kinds.most_common())})")
    print(json.dumps({"bench": "store_queries", "open_incidents": opened, "store_queries_per_cycle": queries,
                      "selects_per_cycle": kinds["SELECT"]}))
    pipeline.close()
    ctx.store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=50)
    main(parser.parse_args().incidents)
