"""The page budget: how rare a point must be before the detect stage calls it a hit.

``detectors.page_budget`` is the number of false incidents per host and day that chance alone
may open, and ``detectors.fleet_page_budget`` the same for all the hosts one agent watches
together (an on-call team lives with a few pages a day for its whole fleet): each host gets the
smaller of the first and its share of the second. The calibrated detectors give each new point its chance under the series' (or the
entity's) own past; a host's tests share its budget by weighted Bonferroni: where the host has
an entity test (one subspace detector over all its series), that test gets half of the budget
and the per-series tests share the other half; otherwise the series share all of it. A test
allowed ``b`` false alarms a day on a series with one point every ``step`` seconds raises a hit
at a chance of ``b * step / 86400`` or less. Whatever the number of series, the false alarms
a host can raise by chance add up to at most the budget (alarms in a row open one incident, so
false incidents are fewer still); this holds for series that move together as for independent
ones, since a union bound needs no independence.

A group's test (the series of one service judged together, on whatever hosts run it) pages for
a place of its own: a group is budgeted as a host is, with its share of ``fleet_page_budget``,
so the groups' tests add places to the fleet's budget, never pages beyond it.

A series' host is the value of the first of ``incidents.topology.host_labels`` it carries
(``host``, ``instance``, ``node``; a ``:port`` suffix dropped); series without one share a host
of their own (the agent's).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent.flow.samples import SeriesInfo

DAY_S = 86_400.0
ENTITY_SHARE = 0.5  # of a host's budget, for its entity tests when it has both kinds


@dataclass(frozen=True, slots=True, kw_only=True)
class Test:
    """One test that spends budget: a series judged alone, or an entity judged as a whole."""

    key: str  # the series id, or the (spec, subject) of an entity joined by "|"
    host: str  # for a group's test, the group (a place of its own)
    entity: bool
    step_s: float
    group: bool = False  # a group's test: its series span hosts, it pages for none of them


def host_of(labels: Mapping[str, str], host_labels: Sequence[str]) -> str:
    """The host a label set names ("" when none of ``host_labels`` is present)."""
    for name in host_labels:
        value = labels.get(name)
        if value:
            head, sep, port = value.rpartition(":")
            return head if sep and port.isdigit() and "]" not in port else value
    return ""


def alarm_chances(tests: Iterable[Test], budget_per_day: float, fleet_per_day: float | None = None) -> dict[str, float]:
    """Each test's alarm chance per point under the budget (false incidents per host-day, and
    per day for all the hosts the tests are on)."""
    tests = list(tests)
    series = Counter(_place(t) for t in tests if not t.entity)
    entities = Counter(_place(t) for t in tests if t.entity)
    places = len(set(series) | set(entities))
    if fleet_per_day is not None and places:
        budget_per_day = min(budget_per_day, fleet_per_day / places)
    out = {}
    for test in tests:
        place = _place(test)
        both = series[place] and entities[place]
        if test.entity:
            share = (ENTITY_SHARE if both else 1.0) / entities[place]
        else:
            share = ((1.0 - ENTITY_SHARE) if both else 1.0) / series[place]
        out[test.key] = min(budget_per_day * share * test.step_s / DAY_S, 0.5)
    return out


def _place(test: Test) -> tuple[bool, str]:
    """Where a test pages: its host, or its group (a group named like a host is another place)."""
    return test.group, test.host


def steps_s(values: pd.DataFrame, fallback_s: float) -> dict[str, float]:
    """Per column, the median time between its points in ``values`` (``fallback_s`` where it
    has fewer than two)."""
    out: dict[str, float] = {}
    if values.empty:
        return out
    times = values.index.as_unit("ns").asi8 / 1e9
    present = values.notna().to_numpy()
    for j, column in enumerate(values.columns):
        t = times[present[:, j]]
        gaps = np.diff(t)
        gaps = gaps[gaps > 0]
        out[str(column)] = float(np.median(gaps)) if len(gaps) else fallback_s
    return out


def series_hosts(series: Mapping[str, SeriesInfo], host_labels: Sequence[str]) -> dict[str, str]:
    return {sid: host_of(info.labels, host_labels) for sid, info in series.items()}


def entity_host(columns: Sequence[str], hosts: Mapping[str, str]) -> str:
    """An entity's host: the one most of its series name."""
    found: defaultdict[str, int] = defaultdict(int)
    for sid in columns:
        found[hosts.get(sid, "")] += 1
    return max(found, key=lambda h: (found[h], h)) if found else ""
