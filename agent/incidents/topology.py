"""The configured dependency graph, and what it says about a set of labels.

Nodes are ``service:<name>`` and ``host:<name>``. An edge X → Y means X needs Y to work: a
service needs the services it depends on, and a service needs the host that runs it. So Y is
*upstream* of X: when Y breaks, X breaks too. Correlation keys put every label set whose node
lies in one connected part of the graph into the same group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.config.incidents import IncidentsConfig, TopologyConfig


class Topology:
    def __init__(self, config: TopologyConfig) -> None:
        self.config = config
        self.needs: dict[str, set[str]] = {}
        for service, deps in config.depends_on.items():
            for dep in deps:
                self._edge(f"service:{service}", f"service:{dep}")
        for host, services in config.hosts.items():
            for service in services:
                self._edge(f"service:{service}", f"host:{host}")
        self.group = self._groups()
        self._upstream: dict[str, set[str]] = {}

    def _edge(self, src: str, dst: str) -> None:
        self.needs.setdefault(src, set()).add(dst)
        self.needs.setdefault(dst, set())

    def _groups(self) -> dict[str, str]:
        """Node → the smallest node name of its connected part (edges taken both ways)."""
        neighbours: dict[str, set[str]] = {n: set(d) for n, d in self.needs.items()}
        for src, dsts in self.needs.items():
            for dst in dsts:
                neighbours[dst].add(src)
        group: dict[str, str] = {}
        for start in sorted(neighbours):
            if start in group:
                continue
            part, todo = {start}, [start]
            while todo:
                for nxt in neighbours[todo.pop()] - part:
                    part.add(nxt)
                    todo.append(nxt)
            for node in part:
                group[node] = min(part)
        return group

    def nodes(self, labels: Mapping[str, str]) -> list[str]:
        """The graph nodes a label set names (its service and its host), known to the graph or not."""
        found = []
        service = labels.get(self.config.service_label)
        if service:
            found.append(f"service:{service}")
        for name in self.config.host_labels:
            value = labels.get(name)
            if value:
                found.append(f"host:{_host(value)}")
                break
        return found

    def upstream_of(self, node: str) -> set[str]:
        """Every node ``node`` needs, directly or through others (remembered: the graph is fixed)."""
        cached = self._upstream.get(node)
        if cached is None:
            cached = self._upstream[node] = self._walk(node)
        return cached

    def _walk(self, node: str) -> set[str]:
        seen: set[str] = set()
        todo = [node]
        while todo:
            for nxt in self.needs.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen


def _host(value: str) -> str:
    """``node1:9100`` → ``node1``; an IPv6 ``[::1]:9100`` keeps its brackets' content."""
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    head, sep, tail = value.rpartition(":")
    return head if sep and tail.isdigit() and ":" not in head else value


def correlation_keys(config: IncidentsConfig, topology: Topology, labels: Mapping[str, str]) -> list[str]:
    """Keys two label sets share exactly when they may belong to one incident."""
    keys = [f"{name}={labels[name]}" for name in config.correlation_labels if labels.get(name)]
    for node in topology.nodes(labels):
        if node in topology.group:
            keys.append(f"topology={topology.group[node]}")
    return sorted(set(keys))


def dependents(topology: Topology, node: str, others: Iterable[str]) -> list[str]:
    """The nodes among ``others`` that need ``node`` (so ``node`` is upstream of them)."""
    if node not in topology.needs:
        return []
    return sorted(o for o in set(others) if o != node and o in topology.needs and node in topology.upstream_of(o))
