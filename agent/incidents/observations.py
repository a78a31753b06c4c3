"""What shard agents tell each other about the open incidents' signals, through the store.

With ``agent.shard: i/n`` and ``n > 1`` each agent judges only its shard's series, but the leader
alone remediates and verifies, for incidents whose signals may lie in any shard. So every working
agent records, after each cycle, which of the open incidents' signals of its shard it judged with
data and whether they fired (``share``); the leader reads the others' before remediating
(``from_other_shards``): judged within the last 1.5 intervals and fired at that judgement:
firing; judged and quiet: quiet; nothing that recent: unknown, a gap, never a recovery.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from agent.clock import to_epoch
from agent.flow.detection import Detection
from agent.flow.samples import shard_of

if TYPE_CHECKING:
    from agent.context import Context

FRESH_INTERVALS = 1.5  # another agent's cycles are not in step with this one's


def share(ctx: "Context", seen: Detection) -> int:
    """Record what this cycle judged of the open incidents' signals of this agent's shard;
    returns how many. Nothing to do for a lone agent (one shard)."""
    index, shards = ctx.config.agent.shard_index
    if shards == 1:
        return 0
    fired = {(hit.series_id, hit.detector) for hit in seen.hits}
    values, gaps = seen.samples.values, seen.samples.gaps
    rows = []
    for sid, detector in ctx.store.observations.open_signals():
        if shard_of(sid, shards) != index:
            continue
        with_data = sid in seen.judged or (
            sid not in gaps and sid in values.columns and bool(values[sid].notna().any()))
        if with_data or (sid, detector) in fired:
            rows.append((sid, detector, (sid, detector) in fired))
    ctx.store.observations.record(rows, now=seen.at)
    return len(rows)


def from_other_shards(ctx: "Context", seen: Detection) -> Detection:
    """``seen`` with the other shards' last word on the open incidents' signals."""
    index, shards = ctx.config.agent.shard_index
    if shards == 1:
        return seen
    theirs = [key for key in ctx.store.observations.open_signals() if shard_of(key[0], shards) != index]
    fresh_from = to_epoch(seen.at) - FRESH_INTERVALS * ctx.config.agent.interval
    states = {key: "unknown" for key in theirs}
    for key, (judged_at, hit_at) in ctx.store.observations.seen(theirs).items():
        if judged_at >= fresh_from:
            states[key] = "firing" if hit_at is not None and hit_at >= judged_at else "quiet"
    return dataclasses.replace(seen, elsewhere=states)
