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
5. otherwise open a new incident, unless this batch has opened its ``max_new`` already (what is
   left of ``incidents.max_new_per_cycle`` for this cycle, shared by detection and Alertmanager's
   webhooks): then the hit goes into the storm incident (the one still open from an earlier batch,
   or a new one), so a catch-all rule gone wrong, or an outage that fires 100,000 alerts, pages
   once, not thousands of times.

Past the cap the rest of the batch is placed in bulk: where each hit may belong (an incident
holding its signal, or sharing a correlation key) is read for all of them at once, and the hits
held by the storm are written together, so a batch of 100,000 new signals costs a few statements
per thousand hits, not several per hit.

Everything for one batch happens in one store transaction, so a batch is all or nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from agent.clock import EARLIEST, to_epoch
from agent.config.incidents import IncidentsConfig
from agent.flow.incidents import STORM_LABEL, IncidentStatus, Severity, Signal
from agent.incidents.budget import BodyBudget, NewIncidentBudget
from agent.incidents.changes import changes_before
from agent.incidents.rootcause import guess_root_cause
from agent.incidents.titles import headline, line_of, rank_signals
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
    cap: int | None = None  # the per-cycle limit the storm's title names
    storm: int | None = None  # the storm incident this batch's overflow went to
    storms: set[int] = field(default_factory=set)  # every storm incident: keys, title, labels stay
    storm_hits: int = 0
    held: list[tuple[Hit, Severity]] = field(default_factory=list)  # for the storm, written at the end

    @property
    def past_cap(self) -> bool:
        return bool(self.held) or (self.max_new is not None and len(self.opened) >= self.max_new)


class _Lookup:
    """Where the hits of a batch past its cap may belong, read for all of them at once and kept
    up to date as they join: incidents holding a signal (open, or resolved since ``flap_since``)
    and incidents by correlation key."""

    def __init__(self, store: "Store", hits: Sequence[Hit], keys_of: Mapping[int, list[str]],
                 flap_since: datetime) -> None:
        self.flap_since = to_epoch(flap_since)
        self.signals: dict[str, int] = {}
        self.state: dict[int, tuple[bool, float]] = {}  # incident -> (resolved, last signal or resolution)
        self.by_key: dict[str, set[int]] = {}
        for key, incident_id, resolved in store.signal_holders([signal_key(h.series_id, h.detector) for h in hits],
                                                               resolved_since=flap_since):
            best = self.signals.get(key)
            if best is None or _rank(incident_id, resolved) < _rank(best, self.state[best][0]):
                self.signals[key] = incident_id
            self.state.setdefault(incident_id, (resolved, 0.0))
        wanted = sorted({k for keys in keys_of.values() for k in keys})
        for key, incident_id, resolved, last_at in store.key_holders(wanted, resolved_since=flap_since):
            self.by_key.setdefault(key, set()).add(incident_id)
            self.state[incident_id] = (resolved, last_at)

    def target(self, key: str, keys: list[str], active_since: datetime) -> int | None:
        """As ``incident_with_signal``, then ``incidents_with_keys`` would answer."""
        if key in self.signals:
            return self.signals[key]
        since = to_epoch(active_since)
        found = [i for k in keys for i in self.by_key.get(k, ())
                 if (self.state[i][1] >= self.flap_since if self.state[i][0] else self.state[i][1] >= since)]
        return min(found, key=lambda i: _rank(i, self.state[i][0])) if found else None

    def joined(self, incident_id: int, key: str, keys: list[str], at: datetime) -> None:
        """``incident_id`` (now open) holds signal ``key`` and, unless it is a storm, ``keys``."""
        resolved, last_at = self.state.get(incident_id, (False, 0.0))
        self.state[incident_id] = (False, max(last_at, to_epoch(at)) if not resolved else to_epoch(at))
        self.signals[key] = incident_id
        for k in keys:
            self.by_key.setdefault(k, set()).add(incident_id)


def _rank(incident_id: int, resolved: bool) -> tuple[bool, int]:
    """Open before resolved, then the newest."""
    return (resolved, -incident_id)


class Correlator:
    def __init__(self, store: "Store", config: IncidentsConfig, *, interval_s: float,
                 metrics: "Metrics | None" = None) -> None:
        self.store = store
        self.config = config
        self.interval_s = interval_s
        self.metrics = metrics
        self.topology = Topology(config.topology)

    def ingest(self, hits: Sequence[Hit], *, now: datetime, actor: str = "agent",
               severities: Sequence[str | None] | None = None, max_new: int | None = None,
               budget: NewIncidentBudget | BodyBudget | None = None) -> Placed:
        """Place ``hits`` (one transaction). ``severities`` may override the configured rules per hit;
        past ``max_new`` new incidents (or what is left of ``budget``, this agent's for the
        cycle, spent as they open) the hits that would open more go into one storm incident."""
        placed = Placed(max_new=max_new, cap=max_new)
        order = sorted(range(len(hits)), key=lambda i: hits[i].ts)
        with self.store.transaction():
            self.store.serialize("incidents")  # shard agents placing hits at once see each other's
            if budget is not None:  # read under the lock: two batches of this agent never both spend it
                placed.max_new, placed.cap = budget.left(), budget.limit
            placed.storms = {i for i, _ in self.store.incidents_with_keys([STORM_KEY], active_since=EARLIEST,
                                                                           resolved_since=EARLIEST)}
            # Repeats of signals that open incidents already hold are the bulk of a busy stream:
            # they are written in bulk; everything else is placed one hit at a time.
            owners = self.store.open_signal_owners(signal_key(h.series_id, h.detector) for h in hits)
            repeats = []
            lookup: _Lookup | None = None
            for position, i in enumerate(order):
                hit = hits[i]
                severity = Severity((severities[i] if severities else None) or self.severity(hit))
                owner = owners.get(signal_key(hit.series_id, hit.detector))
                if owner is not None and severity.rank <= owner[1].rank:
                    repeats.append((owner[0], hit))
                    placed.touched.add(owner[0])
                    if hit.first_at < owner[2] and owner[0] not in placed.storms:
                        placed.stale.add(owner[0])
                    continue
                if placed.past_cap and lookup is None:
                    rest = order[position:]
                    keys_of = {j: self.keys(hits[j].labels) for j in rest}
                    lookup = _Lookup(self.store, [hits[j] for j in rest], keys_of,
                                     now - timedelta(seconds=self.config.flap_window))
                if lookup is not None:
                    self._place_past_cap(hit, keys_of[i], severity, lookup, now=now, actor=actor, placed=placed)
                else:
                    self._place(hit, severity, now=now, actor=actor, placed=placed)
            self._hold_in_storm(placed, now=now, actor=actor)
            self.store.record_repeats(repeats, now=now)
            for incident_id in sorted(placed.stale):
                self.refresh(incident_id, now=now)
            if budget is not None:
                budget.spend(len([i for i in placed.opened if i not in placed.storms]))
        if self.metrics is not None and placed.opened:
            self.metrics.incidents_opened.inc(len(placed.opened))
        if placed.storm is not None:
            log.warning(kv("incident.storm", id=placed.storm, opened=len(placed.opened), held=placed.storm_hits,
                           limit=placed.cap))
        return placed

    def severity(self, hit: Hit) -> str:
        return self.config.severity_for(hit.labels, hit.detector, hit.score)

    def keys(self, labels: Mapping[str, str]) -> list[str]:
        return correlation_keys(self.config, self.topology, labels)

    def _place_past_cap(self, hit: Hit, keys: list[str], severity: Severity, lookup: _Lookup, *, now: datetime,
                        actor: str, placed: Placed) -> None:
        """``_place`` for a hit of a batch past its cap (``keys``: its correlation keys): join
        where it belongs, else the storm."""
        key = signal_key(hit.series_id, hit.detector)
        target = lookup.target(key, keys, hit.ts - timedelta(seconds=self.config.window))
        if target is not None:
            storm = target in placed.storms
            if self._join(target, hit, severity, [] if storm else keys, now=now, actor=actor) and not storm:
                placed.stale.add(target)
            placed.touched.add(target)
            lookup.joined(target, key, [] if storm else keys, hit.ts)
            return
        if self.config.persistence_for(hit.labels, hit.detector) or self.config.corroboration_for(hit.labels, hit.detector):
            self._place(hit, severity, now=now, actor=actor, placed=placed)  # its rule may hold it back
            return
        placed.held.append((hit, severity))

    def _place(self, hit: Hit, severity: Severity, *, now: datetime, actor: str, placed: Placed) -> None:
        store = self.store
        flap_since = now - timedelta(seconds=self.config.flap_window)
        keys = self.keys(hit.labels)
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
        if placed.past_cap:
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
        """A hit past the batch's limit: held for the storm incident, written with the others."""
        placed.held.append((hit, severity))

    def _hold_in_storm(self, placed: Placed, *, now: datetime, actor: str) -> None:
        """Write the held hits into the storm incident (the one still open, else a new one), all
        at once; escalate it once to the worst of them."""
        if not placed.held:
            return
        store = self.store
        hits = [h for h, _ in placed.held]
        worst = max((s for _, s in placed.held), key=lambda s: s.rank)
        # The storm still open takes the overflow, however old its alerts' start times are.
        found = store.incidents_with_keys([STORM_KEY], active_since=EARLIEST)
        if found and found[0][1] != IncidentStatus.RESOLVED.value:
            placed.storm = found[0][0]
        else:
            first = min(hits, key=lambda h: h.ts)
            incident = store.open_incident(
                severity=worst, title=f"Incident storm: more than {placed.cap} new incidents in one cycle",
                labels=STORM_LABELS, started_at=first.ts, now=now, actor=actor, root_cause=first.series_id,
                root_cause_reason=f"{placed.cap} incidents opened in this cycle; the hits past that are held here",
                keys=[STORM_KEY])
            placed.storm = incident.id
            placed.storms.add(incident.id)
            placed.opened.append(incident.id)
        storm = placed.storm
        _, current, _ = store.incident_state(storm)
        store.record_held_hits(hits, incident_id=storm, now=now)
        if worst.rank > current.rank:
            hit = next(h for h, s in placed.held if s is worst)
            store.escalate_incident(storm, worst, actor=actor, now=now,
                                    reason=f"{hit.metric or hit.series_id} ({hit.detector}) is {worst.value}")
        placed.touched.add(storm)
        placed.storm_hits += len(hits)
        placed.held = []

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
