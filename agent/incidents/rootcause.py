"""The root-cause guess of an incident, from its signals (its title: ``summary.headline``).

The guess is the earliest signal furthest upstream in the topology: the signal whose node the
most other signals' nodes need (directly or through others), ties broken by who fired first,
then by the higher peak score.
The reason says which of the two decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.flow.incidents import Signal
from agent.incidents.topology import Topology, dependents

ALERT_DETECTOR = "alertmanager"  # signals fed by Alertmanager webhooks
WHERE_LABELS = ("service", "host", "instance", "node", "model", "job")


@dataclass(frozen=True, slots=True, kw_only=True)
class RootCause:
    """The guess: ``signal``, and when the topology decided, its ``node`` and the nodes of other
    signals that need it (``downstream``)."""

    signal: Signal
    reason: str
    node: str | None = None
    downstream: tuple[str, ...] = ()

    def topology_words(self) -> str | None:
        """``service db is upstream of service api, host web-1 in the topology``, or None."""
        if self.node is None:
            return None
        return (f"{node_name(self.node)} is upstream of {', '.join(node_name(d) for d in self.downstream)} "
                "in the topology")


def guess_root_cause(signals: Sequence[Signal], topology: Topology) -> RootCause | None:
    if not signals:
        return None
    # Work per distinct node set, not per signal: an incident may hold thousands of signals
    # but only a handful of services and hosts.
    groups: dict[tuple[str, ...], list[Signal]] = {}
    for s in signals:
        groups.setdefault(tuple(topology.nodes(s.labels)), []).append(s)
    everywhere = {n for nodes in groups for n in nodes if n in topology.needs}  # only the graph's nodes matter

    def below(nodes: tuple[str, ...]) -> list[str]:
        others = everywhere - set(nodes)
        return sorted({d for node in nodes for d in dependents(topology, node, others)})

    downstream = {nodes: below(nodes) for nodes in groups}
    # Earliest first; among signals that fired together, the one furthest from normal.
    earliest = {nodes: min(members, key=lambda s: (s.first_at, -(s.peak_score or 0.0), s.key))
                for nodes, members in groups.items()}
    best_nodes = min(groups, key=lambda n: (-len(downstream[n]), earliest[n].first_at,
                                            -(earliest[n].peak_score or 0.0), earliest[n].key))
    best = earliest[best_nodes]
    first = f"{best.first_at:%Y-%m-%d %H:%M:%S}Z"
    if downstream[best_nodes]:
        others = everywhere - set(best_nodes)
        node = next(n for n in best_nodes if dependents(topology, n, others))
        cause = RootCause(signal=best, reason="", node=node, downstream=tuple(downstream[best_nodes]))
        return RootCause(signal=best, reason=f"{cause.topology_words()}; its signal first fired at {first}",
                         node=node, downstream=cause.downstream)
    if len(signals) == 1:
        reason = f"the only signal; it first fired at {first}"
    else:
        reason = f"the earliest signal (first fired at {first}); the topology places no other signal upstream of it"
    return RootCause(signal=best, reason=reason)


def node_name(node: str) -> str:
    kind, _, name = node.partition(":")
    return f"{kind} {name}"


def where(labels: Mapping[str, str]) -> str:
    parts = [f"{k}={labels[k]}" for k in WHERE_LABELS if labels.get(k)]
    return ", ".join(parts)
