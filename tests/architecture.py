"""The import graph of the project's own modules, read from their source (nothing is imported), and
the floors ``docs/architecture.md`` puts them on."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("agent", "detectors", "remediations")


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool     # under ``if TYPE_CHECKING:``: no import at run time
    in_function: bool   # inside a function body: runs when the function does


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    def walk(node: ast.AST, type_only: bool, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, type_only, in_function
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), True, in_function)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), type_only, in_function)
            else:
                inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, type_only, inside)
    yield from walk(tree, False, False)


def edges(root: Path) -> list[Edge]:
    known = modules(root)
    out = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, type_only, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node, package, known):
                if target != name:
                    out.append(Edge(source=name, target=target, line=node.lineno, type_only=type_only,
                                    in_function=in_function))
    return out


def _targets(node: ast.Import | ast.ImportFrom, package: str, known: Mapping[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in known:
            found.append(sub)
        elif base in known:
            found.append(base)
    return sorted(set(found))


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


@dataclass(frozen=True, slots=True, kw_only=True)
class LongFunction:
    name: str   # qualified within its module: ``Class.method``, ``outer.inner``
    line: int
    lines: int  # from its ``def`` (decorators not counted) to its last line


def long_functions(source: str, *, limit: int) -> list[LongFunction]:
    """The functions of a module's ``source`` longer than ``limit`` lines, nested ones included."""
    found = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and lines > limit:
                    found.append(LongFunction(name=name, line=child.lineno, lines=lines))
                walk(child, f"{name}.")
            else:
                walk(child, prefix)

    walk(ast.parse(source), "")
    return found


def runtime_graph(all_edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for edge in all_edges:
        if not edge.type_only:
            graph.setdefault(edge.source, set()).add(edge.target)
    return graph


# docs/architecture.md, bottom up: a module imports from its own floor and the floors below only.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("agent", "detectors", "agent.flow", "agent.clock", "agent.errors", "agent.log", "agent.urls",
                "agent.csvcells")),
    ("store and settings", ("agent.store", "agent.config")),
    ("stages", ("agent.sources", "agent.detection", "agent.incidents", "remediations", "agent.notify",
                "agent.rollouts", "agent.report", "agent.status", "agent.metrics", "agent.leases", "agent.workers",
                "agent.schedule", "agent.sdnotify", "agent.context")),
    ("cycle and faces", ("agent.pipeline", "agent.daemon", "agent.service", "agent.api", "agent.cli",
                         "agent.backtest", "agent.replay")),
)


def room(module: str) -> str:
    """The room (a top-level package, or a package or module right under ``agent``) a module is in."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "agent" and len(parts) > 1 else parts[0]


def floor_of(module: str) -> int:
    found = [n for n, (_, rooms) in enumerate(FLOORS) if room(module) in rooms]
    if not found:
        raise LookupError(f"{module}: its room {room(module)} is on no floor of docs/architecture.md")
    return found[0]
