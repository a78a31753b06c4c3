"""The incident summary an on-call engineer reads in 30 seconds, in text, markdown, json or html.

``build`` gathers the facts from the store into a ``Summary``; the functions here put each
section in words, and ``agent.incidents.render`` (text, Markdown, JSON) and ``pages`` (HTML) lay
them out. Every format says, in this order: a title in words (what is wrong, where, how far from
normal, since which change); the status with the current outage's MTTD and MTTR; what the agent
did and its effect, runs in the order they ran; the next step for a person when it is not fixed;
the root-cause line (``agent.incidents.cause``); then the signals, suspect changes, what the agent
did just before, earlier outages and the timeline. No figure is said twice. Label values,
messages and descriptions come from metrics and people, so they are
untrusted: every format neutralises them its own way (control and bidi characters shown as
escapes in all of them, Markdown punctuation backslashed, HTML escaped by Jinja2's autoescape,
``<``/``>``/``&`` written as ``\\u`` escapes in JSON so it can be pasted into a page).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from agent.clock import duration
from agent.flow.incidents import Change, Episode, Incident, IncidentEvent, IncidentStatus
from agent.flow.runs import Run, RunMode, RunStatus
from agent.incidents.catalog import Catalog, template_of
from agent.incidents.changes import nearby_changes
from agent.incidents.rootcause import ALERT_DETECTOR, WHERE_LABELS
from agent.incidents.titles import (
    SignalLine,
    bound_side,
    change_words,
    deviation,
    headline,
    line_of,
    rank_signals,
    title_from,
)
from agent.store.incidents import UnknownIncidentError
from agent.urls import without_credentials

if TYPE_CHECKING:
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
class AgentAction:
    """A remediation playbook the agent applied shortly before the incident (for another one, or
    an earlier outage of it): listed as what it is, never as a suspect. ``run`` is None when the
    run is no longer in the store."""

    change: Change
    run: Run | None

    def words(self) -> str:
        r = self.run
        if r is None:
            return f"the agent applied {self.change.description}"
        return (f"the agent ran {r.playbook} (rule {r.rule}, run {r.id}) for incident #{r.incident_id}: "
                f"{_RUN_WORDS[r.status]}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    incident: Incident
    title: str
    url: str | None
    signals: tuple[SignalLine, ...]
    changes: tuple[Change, ...]
    runs: tuple["RunOutcome", ...]
    timeline: tuple[IncidentEvent, ...]
    actions: tuple[AgentAction, ...] = ()
    onsets: Mapping[int, str] = field(default_factory=dict)  # episode number -> how its start was found
    catalog: Catalog = field(default_factory=Catalog)

    @property
    def episode(self) -> Episode | None:
        return self.incident.episode

    @property
    def onset(self) -> str:
        """How the current outage's start was found, in words ("" when nothing says)."""
        return self.onsets.get(self.episode.number, "") if self.episode else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineRow:
    """One line of the timeline as shown: an event, or the start of an outage (``began``)."""

    ts: datetime
    kind: str
    actor: str
    message: str


# -- gathering ----------------------------------------------------------------------------------

def build(store: "Store", incident_id: int, *, base_url: str | None = None, catalog: Catalog | None = None,
          prometheus_url: str | None = None, lookback_s: float = CHANGES_LOOKBACK_S) -> Summary:
    """Everything the summary shows about one incident; ``UnknownIncidentError`` when there is
    none. ``catalog`` knows the sources' queries and the graph link (``prometheus_url``: a link
    template or a Prometheus URL, when no catalog is given)."""
    incident = store.get_incident(incident_id)
    if incident is None:
        raise UnknownIncidentError(incident_id)
    catalog = (catalog or Catalog(graph_link=template_of(prometheus_url))).with_kinds(store, incident.signals)
    lines = tuple(line_of(s, catalog) for s in rank_signals(incident.signals))
    nearby = nearby_changes(store, incident, lookback_s=lookback_s)
    changes = tuple(c for c in nearby if not c.is_remediation)
    return Summary(
        incident=incident,
        title=title_from(incident, lines, changes),
        url=incident_url(base_url, incident.id),
        signals=lines,
        changes=changes,
        runs=tuple(store.summary_runs(incident.id)),
        timeline=tuple(store.incident_events(incident.id)),
        actions=tuple(agent_action(store, c) for c in nearby if c.is_remediation),
        onsets={e.number: onset_words(store, incident, e) for e in incident.episodes},
        catalog=catalog,
    )


def agent_action(store: "Store", change: Change) -> AgentAction:
    """A remediation change with the run it records."""
    return AgentAction(change=change, run=store.get_run(change.run_id) if change.run_id is not None else None)


def suspects(store: "Store", incident: Incident, lookback_s: float = CHANGES_LOOKBACK_S) -> tuple[Change, ...]:
    """Changes sharing a label with the incident or a signal of it, before it was detected, that
    are not the agent's own remediations; nearest first."""
    return tuple(c for c in nearby_changes(store, incident, lookback_s=lookback_s) if not c.is_remediation)


def onset_words(store: "Store", incident: Incident, episode: Episode) -> str:
    """How an outage's start was found: the words of the hit it came from, else (a store written
    before hits kept them) of the signal that began first."""
    words = store.onset_at(incident.id, episode.started_at)
    if words:
        return words
    first = min(incident.signals, key=lambda s: s.first_at, default=None)
    return first.onset if first is not None and first.first_at == episode.started_at else ""


def title_of(store: "Store", incident: Incident, *, lookback_s: float = CHANGES_LOOKBACK_S) -> str:
    """The title the summary gives ``incident`` (lists, reports and messages show the same one);
    ``incident`` must carry its signals."""
    lines = tuple(line_of(s) for s in rank_signals(incident.signals))
    return title_from(incident, lines, suspects(store, incident, lookback_s))


def incident_url(base_url: str | None, incident_id: int) -> str | None:
    return f"{without_credentials(base_url).rstrip('/')}/incidents/{int(incident_id)}" if base_url else None


# -- the words of each section -------------------------------------------------------------------

def ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def hms(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S") if value else "-"


def label_text(labels: Mapping[str, str]) -> str:
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
    refused = [e for e in s.timeline if e.kind == "remediation" and (e.details or {}).get("refused")]
    if refused and not s.runs:
        e = refused[-1]
        return f"rule {e.details.get('rule')} was not run ({e.details['refused']}); fix it by hand: look at {look}"
    if i.status is IncidentStatus.ACKNOWLEDGED:
        return f"no playbook is set for this; {i.acknowledged_by or 'someone'} has it: look at {look}"
    return f"no playbook is set for this: look at {look}, then: aiops incidents ack {i.id}"


def signal_text(n: int, line: SignalLine) -> list[str]:
    """A signal's two lines: name, labels and detector; then what the detector saw at the peak,
    in the signal's unit (how far from normal as a ratio only below the top signal, whose ratio
    is in the title), and its hits."""
    sig = line.signal
    head = f"{n}. {sig.metric or sig.series_id} {{{label_text(sig.labels)}}} [{sig.detector}]"
    hits = f"1 hit at {hms(sig.last_at)}" if sig.hits == 1 else f"{sig.hits} hits, the last at {hms(sig.last_at)}"
    began = f", began {hms(sig.first_at)}" if sig.first_at != sig.last_at else ""
    return [head, f"{saw_words(line, with_ratio=n > 1)}; {hits}{began}"]


_KIND = re.compile(r"^(sustained (?:rise|drop)|value stuck at \S+ for \d+ points|no data for \d+ points in a row)")


def saw_words(line: SignalLine, *, with_ratio: bool = True) -> str:
    """``808 ms at 11:19:05 vs expected 96.4 ms (8.4x expected; 92x the usual spread)``, the
    drift's features, a bound crossed, or the detector's own sentence when it has no figures."""
    sig, unit = line.signal, line.unit
    facts = line.drift
    if facts is not None:
        drifted = ", ".join(f"{f} PSI {v:.2f}" for f, v in facts.psi.items())
        limit = (f" (threshold PSI {facts.threshold:g}, lower when the second test agrees)"
                 if facts.threshold is not None else "")
        return f"drifted: {drifted}{limit}" if drifted else "drifted"
    if sig.detector == ALERT_DETECTOR or line.observed is None:
        return sig.explanation or "anomalous"
    at = f" at {hms(sig.peak_at)}" if sig.peak_at is not None else ""
    kind = _KIND.match(sig.explanation)
    lead = f"{kind.group(1)}: " if kind else ""
    if line.expected is not None:
        how = [line.deviation] if with_ratio else []
        if line.spread is not None:
            how.append(f"{line.spread:.1f}x the usual spread")
        figures = f"{unit.format(line.observed)}{at} vs expected {unit.format(line.expected)}"
        return lead + figures + (f" ({'; '.join(how)})" if how else "")
    side = bound_side(line)
    if side is not None:
        bound = sig.peak_upper if side[0] == "above" else sig.peak_lower
        return f"{lead}{unit.format(line.observed)}{at}, {side[0]} the {side[1]} {unit.format(bound)}"
    return lead + (sig.explanation or f"{unit.format(line.observed)}{at}")


def earlier_outages(i: Incident) -> list[str]:
    return [f"outage {e.number}: began {ts(e.started_at)}, detected {hms(e.detected_at)} (MTTD {duration(e.mttd_s)}), "
            f"resolved {hms(e.resolved_at)} ({e.resolution or '-'}, MTTR {duration(e.mttr_s)})"
            for e in i.episodes[:-1]]


def timeline_message(e: IncidentEvent) -> str:
    """The event's message; the ``opened`` one carried the title of its day, said above already."""
    return "" if e.kind == "opened" else e.message


def timeline_rows(s: Summary) -> list[TimelineRow]:
    """The events in time order, with each outage's start (``began``) and how it was found."""
    rows = [TimelineRow(ts=e.started_at, kind="began", actor="-",
                        message=(f"outage {e.number}: " if len(s.incident.episodes) > 1 else "")
                        + s.onsets.get(e.number, ""))
            for e in s.incident.episodes]
    rows += [TimelineRow(ts=e.ts, kind=e.kind, actor=e.actor, message=timeline_message(e)) for e in s.timeline]
    return sorted(rows, key=lambda r: r.ts)  # stable: a start comes before an event at the same time


def action_lines(s: Summary) -> list[str]:
    """``HH:MM:SS the agent ran restart_service.yml (rule r, run 5) for incident #3: verified``."""
    return [f"{ts(a.change.ts)} {a.words()}" for a in s.actions]


# -- rendering ----------------------------------------------------------------------------------

def other_labels(s: Summary) -> dict[str, str]:
    """The incident's labels the title does not name already."""
    return {k: v for k, v in s.incident.labels.items() if k not in WHERE_LABELS}


__all__ = ["AgentAction", "Summary", "SignalLine", "TimelineRow", "build", "clean", "deviation", "headline", "md",
           "title_of"]
