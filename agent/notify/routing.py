"""Which channels an incident event goes to: the routes of ``notify.routes``, in order."""

from __future__ import annotations

from collections.abc import Mapping

from agent.config.notify import NotifyConfig, Route
from agent.flow.incidents import Severity


def route_matches(route: Route, kind: str, severity: Severity, labels: Mapping[str, str]) -> bool:
    if kind not in route.events:
        return False
    if severity.rank < Severity(route.min_severity).rank:
        return False
    for name, wanted in route.labels.items():
        if name not in labels or (wanted != "*" and labels[name] != wanted):
            return False
    return True


def channels_for(config: NotifyConfig, kind: str, severity: Severity, labels: Mapping[str, str]) -> list[str]:
    """Channel names, each once, in the order the routes name them."""
    chosen: list[str] = []
    for route in config.routes:
        if not route_matches(route, kind, severity, labels):
            continue
        chosen += [name for name in route.channels if name not in chosen]
        if route.stop:
            break
    return chosen
