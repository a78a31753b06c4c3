"""One incident's summary as text, Markdown or JSON (the HTML page: ``agent.incidents.pages``).

Each format says the same things in the same order, built by ``agent.incidents.summary``: title,
status, what the agent did, the next step, the root-cause line, the signals with their figures in
their units, suspect changes, what the agent did just before (never a suspect), earlier outages
and the timeline with each outage's start. Untrusted text is made inert the format's own way.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from agent.incidents.cause import root_cause_line
from agent.incidents.serialize import episode_dict
from agent.incidents.summary import (
    SignalLine,
    Summary,
    action_lines,
    clean,
    done_lines,
    earlier_outages,
    label_text,
    md,
    next_step,
    other_labels,
    playbook_report,
    signal_text,
    status_line,
    timeline_rows,
    ts,
)


def render_text(s: Summary) -> str:
    i = s.incident
    out = [f"#{i.id} {i.severity.value.upper()}  {clean(s.title)}", f"Status:   {clean(status_line(i))}"]
    out += [f"{'Done:' if n == 0 else '':<10}{clean(line)}" for n, line in enumerate(done_lines(s))]
    step = next_step(s)
    if step:
        out.append(f"Next:     {clean(step)}")
    if s.url:
        out.append(f"Page:     {clean(s.url)}")
    if other_labels(s):
        out.append(f"Labels:   {clean(label_text(other_labels(s)))}")
    cause = root_cause_line(s)
    if cause:
        out += ["", f"Root cause: {clean(cause)}"]
    out += ["", "Signals (most anomalous first):"]
    for n, line in enumerate(s.signals, 1):
        first, *rest = signal_text(n, line)
        out.append(f"  {clean(first)}")
        out += [f"     {clean(r)}" for r in rest]
        if line.graph_url:
            out.append(f"     graph: {line.graph_url}")
    if not s.signals:
        out.append("  none recorded")
    out += ["", "Suspect changes (nearest first):"]
    out += [f"  {ts(c.ts)} {clean(c.kind)} {{{clean(label_text(c.labels))}}}: {clean(c.description)} (by {clean(c.actor)})"
            for c in s.changes] or ["  none"]
    if s.actions:
        out += ["", "What the agent did just before (not a suspect):"] + [f"  {clean(a)}" for a in action_lines(s)]
    earlier = earlier_outages(i)
    if earlier:
        out += ["", "Earlier outages of this incident:"] + [f"  {line}" for line in earlier]
    out += ["", "Timeline:"]
    out += [f"  {ts(r.ts)} {clean(r.kind)}" + (f" by {clean(r.actor)}" if r.kind != "began" else "")
            + (f": {clean(r.message)}" if r.message else "") for r in timeline_rows(s)]
    return "\n".join(out) + "\n"


def render_markdown(s: Summary) -> str:
    i = s.incident
    out = [f"# #{i.id} {md(s.title)}", "", f"**{i.severity.value}** · {md(status_line(i))}  "]
    if s.runs:
        out += ["", "**Done:**", ""] + [f"- {md(line)}" for line in done_lines(s)]
    step = next_step(s)
    if step:
        out += ["", f"**Next:** {md(step)}"]
    if s.url:
        out += ["", f"**Page:** <{s.url}>"]
    if other_labels(s):
        out += ["", f"**Labels:** {md(label_text(other_labels(s)))}"]
    cause = root_cause_line(s)
    if cause:
        out += ["", f"**Root cause:** {md(cause)}"]
    out += ["", "## Signals", ""]
    for n, line in enumerate(s.signals, 1):
        first, *rest = signal_text(n, line)
        graph = f" [graph]({line.graph_url})" if line.graph_url else ""
        out.append(f"{md(first)}{graph}  ")
        out += [f"{md(r)}  " for r in rest]
    if not s.signals:
        out.append("none recorded")
    out += ["", "## Suspect changes", ""]
    out += [f"- {ts(c.ts)} **{md(c.kind)}** {md(label_text(c.labels))}: {md(c.description)} (by {md(c.actor)})"
            for c in s.changes] or ["- none"]
    if s.actions:
        out += ["", "## What the agent did just before (not a suspect)", ""] + [f"- {md(a)}" for a in action_lines(s)]
    earlier = earlier_outages(i)
    if earlier:
        out += ["", "## Earlier outages", ""] + [f"- {md(line)}" for line in earlier]
    out += ["", "## Timeline", ""]
    out += [f"- {ts(r.ts)} **{md(r.kind)}**" + (f" by {md(r.actor)}" if r.kind != "began" else "")
            + (f": {md(r.message)}" if r.message else "") for r in timeline_rows(s)]
    return "\n".join(out) + "\n"


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def as_dict(s: Summary) -> dict[str, Any]:
    i = s.incident
    return {
        "id": i.id, "title": s.title, "url": s.url, "status": i.status.value, "severity": i.severity.value,
        "flapping": i.flapping, "labels": dict(i.labels),
        "started_at": _when(i.started_at), "detected_at": _when(i.detected_at),
        "acknowledged_at": _when(i.acknowledged_at), "acknowledged_by": i.acknowledged_by,
        "resolved_at": _when(i.resolved_at), "resolution": i.resolution,
        "episode": episode_dict(s.episode) if s.episode else None, "onset": s.onset,
        "episodes": [episode_dict(e) for e in i.episodes],
        "done": done_lines(s), "next": next_step(s),
        "root_cause": {"guess": i.root_cause, "reason": i.root_cause_reason, "line": root_cause_line(s)},
        "signals": [_signal(line, s) for line in s.signals],
        "changes": [{"id": c.id, "ts": _when(c.ts), "kind": c.kind, "labels": dict(c.labels),
                     "description": c.description, "actor": c.actor} for c in s.changes],
        "agent_actions": [{"change_id": a.change.id, "ts": _when(a.change.ts), "words": a.words(),
                           "run_id": a.run.id if a.run else None,
                           "incident_id": a.run.incident_id if a.run else None,
                           "status": a.run.status.value if a.run else None} for a in s.actions],
        "remediation": [{"id": r.id, "rule": r.rule, "playbook": r.playbook, "mode": r.mode, "status": r.status,
                         "rc": r.rc, "requested_at": _when(r.requested_at), "started_at": _when(r.started_at),
                         "ended_at": _when(r.ended_at), "reason": r.reason, "effect": playbook_report(r.output)}
                        for r in s.runs],
        "timeline": [{"id": e.id, "ts": _when(e.ts), "kind": e.kind, "actor": e.actor, "message": e.message,
                      "details": dict(e.details)} for e in s.timeline],
    }


def _signal(line: SignalLine, s: Summary) -> dict[str, Any]:
    sig = line.signal
    return {
        "series_id": sig.series_id, "metric": sig.metric, "labels": dict(sig.labels), "detector": sig.detector,
        "observed": line.observed, "expected": line.expected, "lower": sig.peak_lower, "upper": sig.peak_upper,
        "peak_at": _when(sig.peak_at), "unit": line.unit.name, "deviation": line.deviation, "spread": line.spread,
        "peak_score": sig.peak_score, "hits": sig.hits, "first_at": _when(sig.first_at), "last_at": _when(sig.last_at),
        "onset": sig.onset, "explanation": sig.explanation, "promql": s.catalog.promql(sig), "graph_url": line.graph_url}


def render_json(s: Summary) -> str:
    text = json.dumps(as_dict(s), indent=2, sort_keys=False, default=_json_default)
    # Inert even when pasted into an HTML page or a <script> block.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
