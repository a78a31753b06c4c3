"""The incident summary an on-call engineer reads in 30 seconds, in text, markdown, json or html.

``build`` gathers the facts from the store into a ``Summary``; ``render`` turns one into a
format. Every format says, in this order: a title in words (what is wrong, where, how far from
normal, since which change); the status with the current outage's MTTD and MTTR; what the agent
did and its effect, runs in the order they ran; the next step for a person when it is not fixed;
then the signals, suspect changes, earlier outages and the timeline. No figure is said twice. Label values, messages and descriptions come from metrics and people, so they are
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

from agent.clock import duration
from agent.config.notify import GRAPH_LINK
from agent.flow.incidents import STORM_LABEL, Change, Episode, Incident, IncidentEvent, IncidentStatus, Signal
from agent.incidents import suspect_changes
from agent.incidents.rootcause import ALERT_DETECTOR, WHERE_LABELS, where
from agent.incidents.serialize import episode_dict
from agent.store.incidents import UnknownIncidentError
from agent.urls import without_credentials
from detectors.drift import DriftFacts, drift_facts
from agent.flow.runs import RunMode, RunStatus

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.store import Store
    from agent.store.outbox import RunOutcome

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

    @property
    def drift(self) -> DriftFacts | None:
        return drift_facts(self.signal.explanation) if self.signal.detector == "drift" else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    incident: Incident
    title: str
    url: str | None
    signals: tuple[SignalLine, ...]
    changes: tuple[Change, ...]
    runs: tuple["RunOutcome", ...]
    timeline: tuple[IncidentEvent, ...]

    @property
    def episode(self) -> Episode | None:
        return self.incident.episode


# -- gathering ----------------------------------------------------------------------------------

def build(store: "Store", incident_id: int, *, base_url: str | None = None,
          prometheus_url: str | None = None, lookback_s: float = CHANGES_LOOKBACK_S) -> Summary:
    """Everything the summary shows about one incident; ``UnknownIncidentError`` when there is none."""
    incident = store.get_incident(incident_id)
    if incident is None:
        raise UnknownIncidentError(incident_id)
    lines = tuple(line_of(s, prometheus_url) for s in rank_signals(incident.signals))
    changes = suspects(store, incident, lookback_s)
    return Summary(
        incident=incident,
        title=title_from(incident, lines, changes),
        url=incident_url(base_url, incident.id),
        signals=lines,
        changes=changes,
        runs=tuple(store.summary_runs(incident.id)),
        timeline=tuple(store.incident_events(incident.id)),
    )


def suspects(store: "Store", incident: Incident, lookback_s: float = CHANGES_LOOKBACK_S) -> tuple[Change, ...]:
    """Changes sharing a label with the incident or a signal of it, before it was detected; nearest first."""
    return tuple(suspect_changes(store, incident, lookback_s=lookback_s))


def title_of(store: "Store", incident: Incident, *, lookback_s: float = CHANGES_LOOKBACK_S) -> str:
    """The title the summary gives ``incident`` (lists show the same one); ``incident`` must
    carry its signals."""
    lines = tuple(line_of(s, None) for s in rank_signals(incident.signals))
    return title_from(incident, lines, suspects(store, incident, lookback_s))


def title_from(incident: Incident, lines: tuple[SignalLine, ...], changes: tuple[Change, ...]) -> str:
    """``headline`` for a stored incident: its own title where there is nothing to say better."""
    if not lines or incident.labels.get(STORM_LABEL) == "true":  # a storm's signals share only the moment
        base = incident.title or f"incident {incident.id}"
        return f"{base} ({len(lines)} signals held here)" if lines else base
    return headline(lines, changes, labels=incident.labels)


def incident_url(base_url: str | None, incident_id: int) -> str | None:
    return f"{without_credentials(base_url).rstrip('/')}/incidents/{int(incident_id)}" if base_url else None


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


def headline(lines: tuple[SignalLine, ...], changes: tuple[Change, ...] = (), *,
             labels: Mapping[str, str]) -> str:
    """What is wrong, where (``labels``, else the top signal's), how far from normal, and since
    which change: ``fraud model: 4 of 4 features drifted (PSI up to 0.28) since rollout v3``,
    ``http_request_duration_seconds 4.2x expected on service=api, instance=web-1 (+1 more signal)``.
    ``lines`` are ranked, most anomalous first, and not empty."""
    top = lines[0]
    sig = top.signal
    labels = dict(labels) or dict(sig.labels)
    facts = top.drift
    if facts is not None:
        model = sig.labels.get("model") or labels.get("model") or "the"
        text = f"{model} model: {facts.drifted} of {facts.judged} features drifted"
        if facts.psi:
            text += f" (PSI up to {max(facts.psi.values()):.2f})"
    else:
        what = sig.metric or sig.series_id
        if sig.detector == ALERT_DETECTOR:
            far = "firing"
        elif top.observed == 0 and top.expected:
            far = "down to 0"
        else:
            far = top.deviation
        place = where(labels)
        text = f"{what} {far}" + (f" on {place}" if place else "")
    if changes:
        text += f" since {change_words(changes[0])}"
    if len(lines) > 1:
        text += f" (+{len(lines) - 1} more signal{'s' if len(lines) > 2 else ''})"
    return text


_CHANGE_NOUNS = {"model_rollout": "rollout", "deploy": "deploy", "config": "config change"}


def change_words(change: Change) -> str:
    """``rollout v3``, ``deploy v12``, or ``feature_flag at 13:40 UTC`` without a version label."""
    noun = _CHANGE_NOUNS.get(change.kind, change.kind)
    version = change.labels.get("version")
    return f"{noun} {version}" if version else f"{noun} at {change.ts:%H:%M} UTC"


def line_of(signal: Signal, prometheus_url: str | None = None) -> SignalLine:
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
    # A user name in the URL is allowed by the config (a password is not): links never carry either.
    return config.notify.graph_link.replace("{url}", without_credentials(base).rstrip("/"))


# -- the words of each section -------------------------------------------------------------------

def ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def hms(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S") if value else "-"


def _labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def status_line(incident: Incident) -> str:
    """``resolved (remediation) · began 2026-11-24 14:00:00 UTC, detected 14:12:00 (MTTD 12m 00s),
    resolved 14:20:00 (MTTR 20m 00s)``: the current outage's times and durations."""
    e = incident.episode
    state = incident.status.value
    if incident.status is IncidentStatus.RESOLVED and incident.resolution:
        state += f" ({incident.resolution})"
    if e is None:
        return state
    parts = [f"began {ts(e.started_at)}", f"detected {hms(e.detected_at)} (MTTD {duration(e.mttd_s)})"]
    if e.acknowledged_at is not None:
        parts.append(f"acknowledged {hms(e.acknowledged_at)} by {e.acknowledged_by or '-'} "
                     f"(MTTA {duration(e.mtta_s)})")
    if e.resolved_at is not None:
        parts.append(f"resolved {hms(e.resolved_at)} (MTTR {duration(e.mttr_s)})")
    text = f"{state} · " + ", ".join(parts)
    if len(incident.episodes) > 1:
        text += f" · outage {e.number} of this incident" + (", reopened while flapping" if e.flapping else "")
    return text


_REPORT = re.compile(r'TASK \[Report\][^\n]*\n(?:[^\n]*\n){0,3}?\s*"msg": ("(?:[^"\\]|\\.)*")')


def playbook_report(output: str) -> str:
    """The message of the playbook's last ``Report`` task (a ``debug`` msg saying its effect in
    words), or "" when it has none."""
    found = _REPORT.findall(output)
    if not found:
        return ""
    try:
        return str(json.loads(found[-1]))
    except ValueError:
        return ""


_RUN_WORDS = {
    RunStatus.VERIFIED: "verified", RunStatus.SUCCEEDED: "ok", RunStatus.NOT_FIXED: "did not fix it",
    RunStatus.FAILED: "failed", RunStatus.TIMEOUT: "timed out", RunStatus.INTERRUPTED: "was interrupted",
    RunStatus.CANCELED: "was canceled", RunStatus.WAITING_APPROVAL: "waits for approval",
    RunStatus.APPROVED: "approved, not started", RunStatus.PENDING: "about to start", RunStatus.RUNNING: "running",
    RunStatus.VERIFYING: "done; watching whether the signals recover", RunStatus.EXPIRED: "expired unapproved",
    RunStatus.SKIPPED: "skipped: nothing left to fix", RunStatus.SUGGESTED: "suggested only",
    RunStatus.SHADOW: "shadow mode: not run"}
_APPLIED = frozenset({RunStatus.VERIFIED, RunStatus.VERIFYING, RunStatus.NOT_FIXED, RunStatus.SUCCEEDED})
_WORKED = frozenset({RunStatus.VERIFIED, RunStatus.SUCCEEDED})


def run_outcome(run: "RunOutcome", *, verified_at: datetime | None = None) -> str:
    """One run in words, its effect first: ``rolled back fraud v3 → v2 with rollback_model.yml
    (rule rollback-model); verified 1m 00s later``; a check run says what it checked."""
    rc = f" (rc {run.rc})" if run.rc else ""
    words = _RUN_WORDS[run.status] + rc
    if run.mode is RunMode.CHECK:
        return f"checked {run.playbook} in check mode (rule {run.rule}): {words}"
    effect = playbook_report(run.output) if run.status in _APPLIED else ""
    if run.mode is RunMode.ROLLBACK:
        text = f"undid it with {run.playbook} (rule {run.rule})"
    else:
        text = f"{effect} with {run.playbook} (rule {run.rule})" if effect else f"ran {run.playbook} (rule {run.rule})"
    if run.status is RunStatus.VERIFIED and verified_at is not None and run.ended_at is not None:
        return f"{text}; verified {duration((verified_at - run.ended_at).total_seconds())} later"
    text += f"; {words}"
    if run.reason and run.status not in _WORKED:
        text += f": {run.reason}"
    return text


def done_lines(s: Summary) -> list[str]:
    """What the agent did, in the order it ran, as ``HH:MM:SS <run in words>``."""
    verified = s.episode.remediation_verified_at if s.episode else s.incident.remediation_verified_at
    return [f"{hms(r.started_at or r.requested_at)} {run_outcome(r, verified_at=verified)}" for r in s.runs]


_BROKEN = frozenset({RunStatus.NOT_FIXED, RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.INTERRUPTED})


def next_step(s: Summary) -> str | None:
    """What a person should do now; None when nothing is left to do."""
    i = s.incident
    if i.status is IncidentStatus.RESOLVED:
        return None
    look = "the top signal's graph" if s.signals and s.signals[0].graph_url else "the top signal"
    if s.changes:
        look += f" and the {change_words(s.changes[0])} ({s.changes[0].actor})"
    waiting = [r for r in s.runs if r.status is RunStatus.WAITING_APPROVAL]
    if waiting:
        r = waiting[-1]
        return f"approve or reject run #{r.id} ({r.playbook}): aiops remediation approve {r.id}"
    broken = [r for r in s.runs if r.mode is not RunMode.CHECK and r.status in _BROKEN]
    if broken:
        r = broken[-1]
        return (f"{r.playbook} {_RUN_WORDS[r.status]}; fix it by hand: look at {look}; "
                f"the run's output: aiops remediation show {r.id}")
    held = [r for r in s.runs if r.status in (RunStatus.PENDING, RunStatus.APPROVED) and r.mode is not RunMode.CHECK]
    if held:
        r = held[-1]
        return (f"{r.playbook} (run #{r.id}) has not started: a rate limit, the breaker or a busy worker can hold "
                f"it; why: aiops audit export --since 1h | grep run:{r.id}; or fix it by hand: look at {look}")
    if any(r.status in (RunStatus.RUNNING, RunStatus.VERIFYING) for r in s.runs):
        return "none yet: the agent is remediating and resolves the incident once the signals recover"
    if any(r.status is RunStatus.VERIFIED for r in s.runs):
        return "none: the remediation worked; the incident resolves once its signals stay quiet"
    if i.status is IncidentStatus.ACKNOWLEDGED:
        return f"no playbook is set for this; {i.acknowledged_by or 'someone'} has it: look at {look}"
    return f"no playbook is set for this: look at {look}, then: aiops incidents ack {i.id}"


def signal_text(n: int, line: SignalLine) -> list[str]:
    """A signal's two lines: name, labels and detector; then what the detector saw (its own
    sentence, else observed and expected), how far from normal (the top signal's is in the
    title), and its hits."""
    sig = line.signal
    head = f"{n}. {sig.metric or sig.series_id} {{{_labels(sig.labels)}}} [{sig.detector}]"
    facts = line.drift
    if facts is not None:
        drifted = ", ".join(f"{f} PSI {v:.2f}" for f, v in facts.psi.items())
        limit = (f" (threshold PSI {facts.threshold:g}, lower when the second test agrees)"
                 if facts.threshold is not None else "")
        saw = f"drifted: {drifted}{limit}" if drifted else "drifted"
    else:
        saw = sig.explanation or f"observed {_num(line.observed)}, expected {_num(line.expected)}"
        if n > 1 and line.observed is not None and line.expected is not None:
            saw += f" ({line.deviation})"
    hits = f"{sig.hits} hit{'' if sig.hits == 1 else 's'}"
    when = hms(sig.first_at) if sig.first_at == sig.last_at else f"{hms(sig.first_at)}..{hms(sig.last_at)}"
    return [head, f"{saw}; {hits} {when}"]


def earlier_outages(i: Incident) -> list[str]:
    return [f"outage {e.number}: began {ts(e.started_at)}, detected {hms(e.detected_at)} (MTTD {duration(e.mttd_s)}), "
            f"resolved {hms(e.resolved_at)} ({e.resolution or '-'}, MTTR {duration(e.mttr_s)})"
            for e in i.episodes[:-1]]


def timeline_message(e: IncidentEvent) -> str:
    """The event's message; the ``opened`` one carried the title of its day, said above already."""
    return "" if e.kind == "opened" else e.message


# -- rendering ----------------------------------------------------------------------------------

def other_labels(s: Summary) -> dict[str, str]:
    """The incident's labels the title does not name already."""
    return {k: v for k, v in s.incident.labels.items() if k not in WHERE_LABELS}


def render_text(s: Summary) -> str:
    i = s.incident
    out = [f"#{i.id} {i.severity.value.upper()}  {clean(s.title)}", f"Status:   {clean(status_line(i))}"]
    done = done_lines(s)
    out += [f"{'Done:' if n == 0 else '':<10}{clean(line)}" for n, line in enumerate(done)]
    step = next_step(s)
    if step:
        out.append(f"Next:     {clean(step)}")
    if s.url:
        out.append(f"Page:     {clean(s.url)}")
    if other_labels(s):
        out.append(f"Labels:   {clean(_labels(other_labels(s)))}")
    if len(s.signals) > 1 and i.root_cause:
        out += ["", f"Root cause guess: {clean(i.root_cause)}"
                + (f", because {clean(i.root_cause_reason)}" if i.root_cause_reason else "")]
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
    out += [f"  {ts(c.ts)} {clean(c.kind)} {{{clean(_labels(c.labels))}}}: {clean(c.description)} (by {clean(c.actor)})"
            for c in s.changes] or ["  none"]
    earlier = earlier_outages(i)
    if earlier:
        out += ["", "Earlier outages of this incident:"] + [f"  {line}" for line in earlier]
    out += ["", "Timeline:"]
    out += [f"  {ts(e.ts)} {clean(e.kind)} by {clean(e.actor)}" + (f": {clean(m)}" if (m := timeline_message(e)) else "")
            for e in s.timeline] or ["  empty"]
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
        out += ["", f"**Labels:** {md(_labels(other_labels(s)))}"]
    if len(s.signals) > 1 and i.root_cause:
        out += ["", f"**Root cause guess:** {md(i.root_cause)}"
                + (f", because {md(i.root_cause_reason)}" if i.root_cause_reason else "")]
    out += ["", "## Signals", ""]
    for n, line in enumerate(s.signals, 1):
        first, *rest = signal_text(n, line)
        graph = f" [graph]({line.graph_url})" if line.graph_url else ""
        out.append(f"{md(first)}{graph}  ")
        out += [f"{md(r)}  " for r in rest]
    if not s.signals:
        out.append("none recorded")
    out += ["", "## Suspect changes", ""]
    out += [f"- {ts(c.ts)} **{md(c.kind)}** {md(_labels(c.labels))}: {md(c.description)} (by {md(c.actor)})"
            for c in s.changes] or ["- none"]
    earlier = earlier_outages(i)
    if earlier:
        out += ["", "## Earlier outages", ""] + [f"- {md(line)}" for line in earlier]
    out += ["", "## Timeline", ""]
    out += [f"- {ts(e.ts)} **{md(e.kind)}** by {md(e.actor)}" + (f": {md(m)}" if (m := timeline_message(e)) else "")
            for e in s.timeline] or ["- empty"]
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
        "episode": episode_dict(s.episode) if s.episode else None,
        "episodes": [episode_dict(e) for e in i.episodes],
        "done": done_lines(s), "next": next_step(s),
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
                         "ended_at": when(r.ended_at), "reason": r.reason, "effect": playbook_report(r.output)}
                        for r in s.runs],
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


__all__ = ["Summary", "SignalLine", "build", "clean", "deviation", "headline", "md",
           "title_of"]
