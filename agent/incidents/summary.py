"""The incident summary an on-call engineer reads in 30 seconds, in text, markdown, json or html.

``build`` gathers the facts from the store into a ``Summary``; ``render`` turns one into a
format. Label values, messages and descriptions come from metrics and people, so they are
untrusted: every format neutralises them its own way (control and bidi characters shown as
escapes in all of them, Markdown punctuation backslashed, HTML escaped by Jinja2's autoescape,
``<``/``>``/``&`` written as ``\\u`` escapes in JSON so it can be pasted into a page).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agent.config.notify import GRAPH_LINK
from agent.incidents.model import STORM_LABEL, Change, Incident, IncidentEvent, Signal
from agent.store.incidents import UnknownIncidentError

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.store import Store
    from agent.store.outbox import RunOutcome

FORMATS = ("text", "markdown", "json", "html")
CHANGES_LOOKBACK_S = 7200.0
TOP_PLOTS = 3

# Characters that could rewrite a terminal line or reorder text: C0/C1 controls, bidi overrides.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# Markdown that could emphasise, link, embed HTML or break a table cell. ``(``, ``.``, ``-`` and
# ``#`` stay as they are: they only act after ``]`` or at the start of a line, which a value never
# is here; ``_`` inside a word never emphasises. ``:`` is escaped so ``http://`` is no autolink.
_MD_PUNCT = re.compile(r"[\\`*\[\]|~<>&:]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|(?i:www)\.")


def clean(value: object) -> str:
    """``value`` as one line with every control or bidi character shown as an escape."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", "" if value is None else str(value))


def md(value: object) -> str:
    """``value`` as inert Markdown text: no emphasis, links, code, HTML or table breaks."""
    text = clean(value)
    return _MD_PUNCT.sub(_md_escape, text)


def _md_escape(match: re.Match[str]) -> str:
    found = match.group(0)
    if found in _MD_ENTITIES:
        return _MD_ENTITIES[found]
    return found[:-1] + "\\." if len(found) > 1 else "\\" + found


_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalLine:
    """A member signal with how far it is from normal; ``graph_url`` opens it in Prometheus."""

    signal: Signal
    observed: float | None
    expected: float | None
    deviation: str
    graph_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    incident: Incident
    title: str
    url: str | None
    signals: tuple[SignalLine, ...]
    changes: tuple[Change, ...]
    runs: tuple["RunOutcome", ...]
    timeline: tuple[IncidentEvent, ...]


# -- gathering ----------------------------------------------------------------------------------

def build(store: "Store", incident_id: int, *, base_url: str | None = None,
          prometheus_url: str | None = None, lookback_s: float = CHANGES_LOOKBACK_S) -> Summary:
    """Everything the summary shows about one incident; ``UnknownIncidentError`` when there is none."""
    incident = store.get_incident(incident_id)
    if incident is None:
        raise UnknownIncidentError(incident_id)
    lines = tuple(_signal_line(s, prometheus_url) for s in rank_signals(incident.signals))
    changes = tuple(store.changes_near(dict(incident.labels), before=incident.detected_at, lookback_s=lookback_s))
    return Summary(
        incident=incident,
        title=title_for(incident, lines),
        url=incident_url(base_url, incident.id),
        signals=lines,
        changes=changes,
        runs=tuple(store.summary_runs(incident.id)),
        timeline=tuple(store.incident_events(incident.id)),
    )


def incident_url(base_url: str | None, incident_id: int) -> str | None:
    return f"{base_url.rstrip('/')}/incidents/{int(incident_id)}" if base_url else None


def rank_signals(signals: tuple[Signal, ...]) -> list[Signal]:
    """Most anomalous first: peak score, then number of hits, then the earliest."""
    return sorted(signals, key=lambda s: (-(s.peak_score if s.peak_score is not None else float("-inf")),
                                          -s.hits, s.first_at))


def deviation(observed: float | None, expected: float | None) -> str:
    """How far ``observed`` is from ``expected``, in words a person compares at a glance."""
    if observed is None or expected is None:
        return "anomalous"
    if expected == 0:
        return f"{observed:.3g} vs expected 0"
    ratio = observed / expected
    if ratio >= 2:
        return f"{ratio:.1f}x expected"
    change = (observed - expected) / abs(expected) * 100
    return f"{change:+.0f}% vs expected"


def title_for(incident: Incident, lines: tuple[SignalLine, ...]) -> str:
    """What, where, how far from normal: ``api_latency_seconds 4.1x expected (0.82 vs 0.2) on
    service=api, instance=web-1 (+2 more signals)``."""
    if not lines:
        return incident.title or f"incident {incident.id}"
    if incident.labels.get(STORM_LABEL) == "true":  # its signals share nothing but the moment
        return f"{incident.title} ({len(lines)} signals held here)"
    top = lines[0]
    what = top.signal.metric or top.signal.series_id
    far = top.deviation
    if top.observed is not None and top.expected is not None:
        far += f" ({top.observed:.3g} vs {top.expected:.3g})"
    where_labels = dict(incident.labels) or dict(top.signal.labels)
    where = ", ".join(f"{k}={v}" for k, v in sorted(where_labels.items())[:3])
    text = f"{what} {far}" + (f" on {where}" if where else "")
    if len(lines) > 1:
        text += f" (+{len(lines) - 1} more signal{'s' if len(lines) > 2 else ''})"
    return text


def _signal_line(signal: Signal, prometheus_url: str | None) -> SignalLine:
    return SignalLine(
        signal=signal, observed=signal.last_value, expected=signal.last_expected,
        deviation=deviation(signal.last_value, signal.last_expected),
        graph_url=graph_url(prometheus_url, signal) if prometheus_url else None)


def promql_selector(metric: str, labels: Mapping[str, str]) -> str:
    """``metric{a="x",b="y"}`` with label values quoted as PromQL strings."""
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    inner = ",".join(f"{k}={quoted(str(v))}" for k, v in sorted(labels.items()) if k != "__name__")
    return f"{metric}{{{inner}}}" if inner else metric


def graph_url(link: str, signal: Signal) -> str | None:
    """A graph page of the signal around its anomaly. ``link`` is a template from
    ``graph_link_of`` (or a bare Prometheus URL, for its graph page); every value filled in is
    URL-encoded, and nothing from a label can add a placeholder."""
    if not signal.metric:
        return None
    if "{expr}" not in link:
        link = GRAPH_LINK.replace("{url}", link.rstrip("/"))
    expr = promql_selector(signal.metric, signal.labels)
    end = signal.last_at + timedelta(minutes=30)
    span_h = max(1, int((end - signal.first_at).total_seconds() // 3600) + 2)
    values = {"expr": quote(expr, safe=""), "range": f"{span_h}h",
              "end": quote(end.strftime("%Y-%m-%d %H:%M:%S"), safe="")}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), link)


_PLACEHOLDER = re.compile(r"{(expr|range|end)}")


def prometheus_url(config: "AgentConfig") -> str | None:
    """The graph link template of signals (``notify.graph_link`` with ``{url}`` filled in):
    ``notify.prometheus_url``, else the Prometheus source when it is the one in use, else no link."""
    base = config.notify.prometheus_url
    if not base and config.sources.kind == "prometheus":
        base = config.sources.prometheus.url
    if not base:
        return None
    return config.notify.graph_link.replace("{url}", base.rstrip("/"))


# -- rendering ----------------------------------------------------------------------------------

def render(store: "Store", incident_id: int, fmt: str, *, base_url: str | None = None,
           prometheus_url: str | None = None) -> str:
    """The summary of incident ``incident_id`` as ``fmt`` (text, markdown, json or html)."""
    if fmt not in FORMATS:
        raise ValueError(f"expected a format among {', '.join(FORMATS)}, found {fmt!r}")
    summary = build(store, incident_id, base_url=base_url, prometheus_url=prometheus_url)
    if fmt == "text":
        return render_text(summary)
    if fmt == "markdown":
        return render_markdown(summary)
    if fmt == "json":
        return render_json(summary)
    from agent.incidents.pages import render_html  # matplotlib and Jinja2 load only for html

    return render_html(summary, store)


def ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def run_outcome(run: "RunOutcome") -> str:
    """``restart-api (restart_service.yml, apply): verified, rc 0: signals quiet for 300s``."""
    rc = f", rc {run.rc}" if run.rc is not None else ""
    why = f": {run.reason}" if run.reason else ""
    return f"{run.rule} ({run.playbook}, {run.mode}): {run.status}{rc}{why}"


def status_line(incident: Incident) -> str:
    text = f"{incident.status.value}"
    if incident.flapping:
        text += f", flapping (reopened {incident.reopened}x)"
    return text


def render_text(s: Summary) -> str:
    i = s.incident
    out = [f"#{i.id} [{i.severity.value.upper()}] {clean(s.title)}",
           f"Status:    {status_line(i)}",
           f"Started:   {ts(i.started_at)}   Detected: {ts(i.detected_at)}"]
    if i.resolved_at:
        out.append(f"Resolved:  {ts(i.resolved_at)} ({clean(i.resolution or '')})")
    if i.labels:
        out.append(f"Labels:    {clean(_labels(i.labels))}")
    if s.url:
        out.append(f"Page:      {clean(s.url)}")
    out += ["", f"Root cause guess: {clean(i.root_cause or 'none')}"]
    if i.root_cause_reason:
        out.append(f"  because {clean(i.root_cause_reason)}")
    out += ["", "Signals (most anomalous first):"]
    for n, line in enumerate(s.signals, 1):
        sig = line.signal
        out.append(f"  {n}. {clean(sig.metric or sig.series_id)} {{{clean(_labels(sig.labels))}}} [{clean(sig.detector)}]")
        out.append(f"     observed {_num(line.observed)}, expected {_num(line.expected)}: {line.deviation};"
                   f" {sig.hits} hits {ts(sig.first_at)} .. {ts(sig.last_at)}")
        if sig.explanation:
            out.append(f"     {clean(sig.explanation)}")
        if line.graph_url:
            out.append(f"     graph: {line.graph_url}")
    if not s.signals:
        out.append("  none recorded")
    out += ["", "Suspect changes (nearest first):"]
    out += [f"  {ts(c.ts)} {clean(c.kind)} {{{clean(_labels(c.labels))}}}: {clean(c.description)} (by {clean(c.actor)})"
            for c in s.changes] or ["  none"]
    out += ["", "Remediation:"]
    out += [f"  {ts(r.requested_at)} {clean(run_outcome(r))}" for r in s.runs] or ["  none"]
    out += ["", "Timeline:"]
    out += [f"  {ts(e.ts)} {clean(e.kind)} by {clean(e.actor)}: {clean(e.message)}" for e in s.timeline] or ["  empty"]
    return "\n".join(out) + "\n"


def render_markdown(s: Summary) -> str:
    i = s.incident
    head = f"# #{i.id} {md(s.title)}"
    out = [head, "",
           f"**Severity:** {i.severity.value} · **Status:** {md(status_line(i))}  ",
           f"**Started:** {ts(i.started_at)} · **Detected:** {ts(i.detected_at)}"
           + (f" · **Resolved:** {ts(i.resolved_at)}" if i.resolved_at else "") + "  "]
    if i.labels:
        out.append(f"**Labels:** {md(_labels(i.labels))}  ")
    if s.url:
        out.append(f"**Page:** <{s.url}>  ")
    out += ["", "## Root cause guess", "", md(i.root_cause or "none")
            + (f": because {md(i.root_cause_reason)}" if i.root_cause_reason else ""), "",
            "## Signals", "", "| # | signal | detector | observed | expected | from normal | hits | graph |",
            "|---|---|---|---|---|---|---|---|"]
    for n, line in enumerate(s.signals, 1):
        sig = line.signal
        graph = f"[graph]({line.graph_url})" if line.graph_url else ""
        out.append(f"| {n} | {md(sig.metric or sig.series_id)} {{{md(_labels(sig.labels))}}} | {md(sig.detector)} | "
                   f"{_num(line.observed)} | {_num(line.expected)} | {line.deviation} | {sig.hits} | {graph} |")
    out += ["", "## Suspect changes", ""]
    out += [f"- {ts(c.ts)} **{md(c.kind)}** {md(_labels(c.labels))}: {md(c.description)} (by {md(c.actor)})"
            for c in s.changes] or ["- none"]
    out += ["", "## Remediation", ""]
    out += [f"- {ts(r.requested_at)} {md(run_outcome(r))}" for r in s.runs] or ["- none"]
    out += ["", "## Timeline", ""]
    out += [f"- {ts(e.ts)} **{md(e.kind)}** by {md(e.actor)}: {md(e.message)}" for e in s.timeline] or ["- empty"]
    return "\n".join(out) + "\n"


def as_dict(s: Summary) -> dict[str, Any]:
    i = s.incident

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": i.id, "title": s.title, "url": s.url, "status": i.status.value, "severity": i.severity.value,
        "flapping": i.flapping, "labels": dict(i.labels),
        "started_at": when(i.started_at), "detected_at": when(i.detected_at),
        "acknowledged_at": when(i.acknowledged_at), "acknowledged_by": i.acknowledged_by,
        "resolved_at": when(i.resolved_at), "resolution": i.resolution,
        "root_cause": {"guess": i.root_cause, "reason": i.root_cause_reason},
        "signals": [{
            "series_id": l.signal.series_id, "metric": l.signal.metric, "labels": dict(l.signal.labels),
            "detector": l.signal.detector, "observed": l.observed, "expected": l.expected,
            "deviation": l.deviation, "peak_score": l.signal.peak_score, "hits": l.signal.hits,
            "first_at": when(l.signal.first_at), "last_at": when(l.signal.last_at),
            "explanation": l.signal.explanation, "graph_url": l.graph_url} for l in s.signals],
        "changes": [{"id": c.id, "ts": when(c.ts), "kind": c.kind, "labels": dict(c.labels),
                     "description": c.description, "actor": c.actor} for c in s.changes],
        "remediation": [{"id": r.id, "rule": r.rule, "playbook": r.playbook, "mode": r.mode, "status": r.status,
                         "rc": r.rc, "requested_at": when(r.requested_at), "started_at": when(r.started_at),
                         "ended_at": when(r.ended_at), "reason": r.reason} for r in s.runs],
        "timeline": [{"id": e.id, "ts": when(e.ts), "kind": e.kind, "actor": e.actor, "message": e.message,
                      "details": dict(e.details)} for e in s.timeline],
    }


def render_json(s: Summary) -> str:
    text = json.dumps(as_dict(s), indent=2, sort_keys=False, default=_json_default)
    # Inert even when pasted into an HTML page or a <script> block.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


__all__ = ["FORMATS", "Summary", "SignalLine", "build", "clean", "deviation", "md", "render", "title_for"]
