"""Placing hits into incidents: join, reopen (flapping), wait (N of M cycles) or open.

For each hit, in time order:

1. the same series and detector already in an open incident → update that incident (repeats
   never open a new one); in one resolved within the flap window → reopen it, marked flapping;
2. an open incident whose last signal is within ``window`` and that shares a correlation key
   (a correlation label value, or a connected part of the topology) → join it; a resolved one
   sharing a key within the flap window → reopen it, flapping;
3. a persistence rule that is not yet satisfied → keep the hit as pending;
4. a corroboration rule whose other series have not fired within its ``within`` → keep the hit
   as pending (a later hit sharing a key opens the incident and takes the waiting ones in);
5. otherwise open a new incident, unless this batch has opened its ``max_new`` already (the
   pipeline passes ``incidents.max_new_per_cycle``; Alertmanager's batches, grouped already,
   are not capped): then the hit goes into the storm incident (opened by the first such hit, or the one still
   open from an earlier batch), so a catch-all rule gone wrong pages once, not thousands of times.

Everything for one batch happens in one store transaction, so a batch is all or nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from agent.clock import EARLIEST
from agent.config.incidents import IncidentsConfig
from agent.flow.incidents import STORM_LABEL, IncidentStatus, Severity, Signal
from agent.incidents import changes_before
from agent.incidents.rootcause import guess_root_cause
from agent.incidents.summary import headline, line_of, rank_signals
from agent.incidents.topology import Topology, correlation_keys
from agent.log import kv
from agent.store.incidents import signal_key
from detectors.base import Hit

if TYPE_CHECKING:
    from agent.metrics import Metrics
    from agent.store import Store

log = logging.getLogger(__name__)

STORM_KEY = "aiops:storm"
STORM_LABELS = {STORM_LABEL: "true"}


@dataclass
class Placed:
    """What one batch did: incidents touched and opened, hits left pending."""

    touched: set[int] = field(default_factory=set)
    opened: list[int] = field(default_factory=list)
    pending: int = 0
    stale: set[int] = field(default_factory=set)  # root cause and title to recompute
    max_new: int | None = None  # incidents this batch may open before the rest go to a storm
    storm: int | None = None  # the storm incident this batch's overflow went to
    storms: set[int] = field(default_factory=set)  # every storm incident: keys, title, labels stay
    storm_hits: int = 0


class Correlator:
    def __init__(self, store: "Store", config: IncidentsConfig, *, interval_s: float,
                 metrics: "Metrics | None" = None) -> None:
        self.store = store
        self.config = config
        self.interval_s = interval_s
        self.metrics = metrics
        self.topology = Topology(config.topology)

    def ingest(self, hits: Sequence[Hit], *, now: datetime, actor: str = "agent",
               severities: Sequence[str | None] | None = None, max_new: int | None = None) -> Placed:
        """Place ``hits`` (one transaction). ``severities`` may override the configured rules per hit;
        past ``max_new`` new incidents the hits that would open more go into one storm incident."""
        placed = Placed(max_new=max_new)
        order = sorted(range(len(hits)), key=lambda i: hits[i].ts)
        with self.store.transaction():
            self.store.serialize("incidents")  # shard agents placing hits at once see each other's
            placed.storms = {i for i, _ in self.store.incidents_with_keys([STORM_KEY], active_since=EARLIEST,
                                                                           resolved_since=EARLIEST)}
            # Repeats of signals that open incidents already hold are the bulk of a busy stream:
            # they are written in bulk; everything else is placed one hit at a time.
            owners = self.store.open_signal_owners(signal_key(h.series_id, h.detector) for h in hits)
            repeats = []
            for i in order:
                hit = hits[i]
                severity = Severity((severities[i] if severities else None) or self.severity(hit))
                owner = owners.get(signal_key(hit.series_id, hit.detector))
                if owner is not None and severity.rank <= owner[1].rank:
                    repeats.append((owner[0], hit))
                    placed.touched.add(owner[0])
                    if hit.first_at < owner[2] and owner[0] not in placed.storms:
                        placed.stale.add(owner[0])
                    continue
                self._place(hit, severity, now=now, actor=actor, placed=placed)
            self.store.record_repeats(repeats, now=now)
            for incident_id in sorted(placed.stale):
                self.refresh(incident_id, now=now)
        if self.metrics is not None and placed.opened:
            self.metrics.incidents_opened.inc(len(placed.opened))
        if placed.storm is not None:
            log.warning(kv("incident.storm", id=placed.storm, opened=len(placed.opened), held=placed.storm_hits,
                           limit=max_new))
        return placed

    def severity(self, hit: Hit) -> str:
        return self.config.severity_for(hit.labels, hit.detector, hit.score)

    def _place(self, hit: Hit, severity: Severity, *, now: datetime, actor: str, placed: Placed) -> None:
        store = self.store
        flap_since = now - timedelta(seconds=self.config.flap_window)
        keys = correlation_keys(self.config, self.topology, hit.labels)
        target = store.incident_with_signal(signal_key(hit.series_id, hit.detector), resolved_since=flap_since)
        if target is None:
            found = store.incidents_with_keys(keys, active_since=hit.ts - timedelta(seconds=self.config.window),
                                              resolved_since=flap_since)
            target = found[0][0] if found else None
        if target is not None:
            storm = target in placed.storms
            if self._join(target, hit, severity, [] if storm else keys, now=now, actor=actor) and not storm:
                placed.stale.add(target)
            placed.touched.add(target)
            return
        rule = self.config.persistence_for(hit.labels, hit.detector)
        if rule is not None:
            since = now - timedelta(seconds=(rule.cycles - 0.5) * self.interval_s)
            earlier = store.pending_hit_cycles(hit.series_id, hit.detector, since=since)
            seen_now = store.pending_hit_cycles(hit.series_id, hit.detector, since=now)
            if earlier - seen_now + 1 < rule.hits:
                store.record_hits([hit], incident_id=None, now=now)
                placed.pending += 1
                return
        partners = self._corroborating(hit, keys)
        if partners is None:
            store.record_hits([hit], incident_id=None, now=now)
            placed.pending += 1
            return
        if placed.storm is not None or (placed.max_new is not None and len(placed.opened) >= placed.max_new):
            self._storm(hit, severity, now=now, actor=actor, placed=placed)
            return
        incident_id = self._open(hit, severity, keys, now=now, actor=actor)
        if rule is not None:
            store.attach_pending_hits(hit.series_id, hit.detector, since=since, incident_id=incident_id)
        if partners:
            store.claim_hits(partners, incident_id=incident_id, now=now, actor=actor)
            placed.stale.add(incident_id)
        placed.touched.add(incident_id)
        placed.opened.append(incident_id)

    def _storm(self, hit: Hit, severity: Severity, *, now: datetime, actor: str, placed: Placed) -> None:
        """Put a hit past the batch's limit into the storm incident (opening it if none is open)."""
        store = self.store
        if placed.storm is None:
            found = store.incidents_with_keys([STORM_KEY], active_since=now - timedelta(seconds=self.config.window))
            if found and found[0][1] != IncidentStatus.RESOLVED.value:
                placed.storm = found[0][0]
            else:
                limit = placed.max_new
                signal = signal_of(hit)
                incident = store.open_incident(
                    severity=severity, title=f"Incident storm: more than {limit} new incidents in one cycle",
                    labels=STORM_LABELS, started_at=hit.ts, now=now, actor=actor, root_cause=signal.series_id,
                    root_cause_reason=f"{limit} incidents opened in this cycle; the hits past that are held here",
                    keys=[STORM_KEY])
                placed.storm = incident.id
                placed.storms.add(incident.id)
                placed.opened.append(incident.id)
        storm = placed.storm
        _, current, _ = store.incident_state(storm)
        store.record_hits([hit], incident_id=storm, now=now, actor=actor, events=False)
        if severity.rank > current.rank:
            store.escalate_incident(storm, severity, actor=actor, now=now,
                                    reason=f"{hit.metric or hit.series_id} ({hit.detector}) is {severity.value}")
        placed.touched.add(storm)
        placed.storm_hits += 1

    def _corroborating(self, hit: Hit, keys: list[str]) -> list[tuple[int, Hit]] | None:
        """The waiting hits that let ``hit`` open an incident ([] when it needs none), or None
        when a corroboration rule holds it back."""
        rule = self.config.corroboration_for(hit.labels, hit.detector)
        if rule is None or rule.series <= 1 or (rule.alone_score is not None and hit.score >= rule.alone_score):
            return []
        since = hit.ts - timedelta(seconds=rule.within)
        shared = set(keys)
        partners = [(row, other) for row, other in self.store.pending_hits(since=since, other_than=hit.series_id)
                    if shared & set(correlation_keys(self.config, self.topology, other.labels))]
        if len({other.series_id for _, other in partners}) + 1 < rule.series:
            return None
        return partners

    def _open(self, hit: Hit, severity: Severity, keys: list[str], *, now: datetime, actor: str) -> int:
        signal = signal_of(hit)
        root = guess_root_cause([signal], self.topology)
        assert root is not None
        incident = self.store.open_incident(
            severity=severity, title=self._title([signal], _own_labels(hit.labels), now),
            labels=_own_labels(hit.labels), started_at=hit.first_at, now=now,
            actor=actor, root_cause=signal.series_id, root_cause_reason=root.reason, keys=keys)
        self.store.record_hits([hit], incident_id=incident.id, now=now, actor=actor, events=False)
        log.info(kv("incident.opened", id=incident.id, severity=severity.value, series=hit.series_id,
                    detector=hit.detector))
        return incident.id

    def _join(self, incident_id: int, hit: Hit, severity: Severity, keys: list[str], *, now: datetime,
              actor: str) -> bool:
        """Add the hit to the incident; True when its root cause and title need a new look."""
        store = self.store
        status, current, started_at = store.incident_state(incident_id)
        if status is IncidentStatus.RESOLVED:
            store.transition_incident(incident_id, IncidentStatus.OPEN, actor=actor, now=now, flapping=True,
                                      started_at=hit.first_at,
                                      reason=f"recurred within the flap window: {hit.metric or hit.series_id}")
            log.info(kv("incident.reopened", id=incident_id, flapping=True))
        added = store.record_hits([hit], incident_id=incident_id, now=now, actor=actor)
        if added and keys:
            store.set_incident_keys(incident_id, keys)
        if severity.rank > current.rank:
            store.escalate_incident(incident_id, severity, actor=actor, now=now,
                                    reason=f"{hit.metric or hit.series_id} ({hit.detector}) is {severity.value}")
        return bool(added) or hit.first_at < started_at

    def _title(self, signals: Sequence[Signal], labels: dict[str, str], now: datetime) -> str:
        """The summary's title as of now (every view recomputes it from the same function): the
        suspects are the changes near the labels and signals, the agent's remediations left out."""
        changes = tuple(c for c in changes_before(self.store, [labels, *(s.labels for s in signals)], before=now,
                                                  lookback_s=self.config.changes_lookback) if not c.is_remediation)
        return headline(tuple(line_of(s) for s in rank_signals(signals)), changes, labels=labels)

    def refresh(self, incident_id: int, *, now: datetime) -> None:
        """Recompute the root-cause guess, title, labels and start from the incident's signals."""
        incident = self.store.get_incident(incident_id)
        assert incident is not None
        root = guess_root_cause(incident.signals, self.topology)
        if root is None:
            return
        self.store.update_incident(
            incident_id, now=now, title=self._title(incident.signals, _own_labels(root.signal.labels), now),
            labels=_own_labels(root.signal.labels), root_cause=root.signal.series_id, root_cause_reason=root.reason,
            started_at=min(s.first_at for s in incident.signals))


def _own_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """An incident's labels from a signal's: the storm label is the correlator's to set, never a
    target's or an alert's (label values are untrusted)."""
    return {k: v for k, v in labels.items() if k != STORM_LABEL}


def signal_of(hit: Hit) -> Signal:
    return Signal(series_id=hit.series_id, detector=hit.detector, metric=hit.metric, labels=dict(hit.labels),
                  first_at=hit.first_at, last_at=hit.ts, peak_score=hit.score, last_value=hit.value,
                  last_expected=hit.expected, direction=str(hit.direction), explanation=hit.explanation,
                  peak_at=hit.ts, peak_value=hit.value, peak_expected=hit.expected, peak_lower=hit.lower,
                  peak_upper=hit.upper, onset=hit.onset)
