"""The root-cause line of a summary: what most likely caused the current outage, and why.

The evidence, in the order it is weighed: a change people or a pipeline made before the outage
began (and the label it shares with the incident), the topology (the service or host the other
signals' nodes need), the series that moved first and how much earlier. The cause is the first of
them there is; every one found is said. With none, the line says ``unknown`` and what is missing:
it never restates the symptom.
"""

from __future__ import annotations

from agent.clock import duration
from agent.flow.incidents import Change, Incident, Signal
from agent.incidents.rootcause import guess_root_cause, node_name, where
from agent.incidents.summary import Summary, change_words, hms


def root_cause_line(s: Summary) -> str:
    """What caused the current outage and why, from the evidence there is: a change that came
    before it, the topology (what is upstream of the other signals), the signal that moved first;
    ``unknown`` and what is missing when there is none. Never the symptom restated."""
    signals = s.incident.current_signals or s.incident.signals
    episode = s.episode
    if not signals or episode is None:
        return ""
    evidence: list[str] = []
    cause = ""
    change = next((c for c in s.changes if c.ts <= episode.started_at), None)
    if change is not None:
        shared = _shared_label(change, s.incident)
        cause = f"{change_words(change)} by {change.actor}"
        evidence.append(f"it came {duration((episode.started_at - change.ts).total_seconds())} before the outage "
                        f"began" + (f", on {shared}" if shared else ""))
    guess = guess_root_cause(signals, s.catalog.topology)
    if guess is not None and guess.node is not None:
        cause = cause or node_name(guess.node)
        evidence.append(f"{guess.topology_words()}")
    mover = first_mover(signals)
    if mover:
        cause = cause or mover[0]
        evidence.append(mover[1])
    if not cause:
        missing = ["one signal" if len({x.series_id for x in signals}) == 1 else "its signals began together",
                   "no change before it"]
        if not s.catalog.topology.needs:
            missing.append("no topology configured")
        else:
            missing.append("nothing upstream of it in the topology")
        return f"unknown: {', '.join(missing)}"
    return f"{cause}: {'; '.join(evidence)}"


def _shared_label(change: Change, incident: Incident) -> str:
    mine = {item for labels in [incident.labels, *(x.labels for x in incident.signals)] for item in labels.items()}
    shared = sorted(set(change.labels.items()) & mine)
    return f"{shared[0][0]}={shared[0][1]}" if shared else ""


def first_mover(signals: tuple[Signal, ...]) -> tuple[str, str] | None:
    """(what moved first, how much earlier than the rest) when one series began before every other."""
    ordered = sorted(signals, key=lambda x: (x.first_at, x.key))
    later = next((x for x in ordered if x.series_id != ordered[0].series_id and x.first_at > ordered[0].first_at), None)
    if later is None or any(x.first_at == ordered[0].first_at and x.series_id != ordered[0].series_id for x in ordered):
        return None
    first = ordered[0]
    name = f"{first.metric or first.series_id}" + (f" on {where(first.labels)}" if where(first.labels) else "")
    gap = duration((later.first_at - first.first_at).total_seconds())
    return name, (f"{first.metric or first.series_id} moved first, at {hms(first.first_at)}, {gap} before "
                  f"{later.metric or later.series_id}")
