"""The rules ``docs/architecture.md`` states, checked on the source: no import circles, each floor
imports from itself and the floors below only, and no function is longer than a screen."""

from __future__ import annotations

import textwrap

from tests.architecture import FLOORS, Edge, cycles, edges, floor_of, long_functions, modules, room, runtime_graph
from tests.conftest import REPO

MAX_FUNCTION_LINES = 60


def _edges() -> list[Edge]:
    return edges(REPO)


def _where(edge: Edge) -> str:
    return f"{edge.source} (line {edge.line}) imports {edge.target}"


def test_the_graph_holds_the_modules_and_their_imports() -> None:
    found = _edges()
    assert {"agent.pipeline", "agent.store.incidents", "detectors.forecast", "remediations.runner"} <= set(modules(REPO))
    pairs = {(e.source, e.target, e.type_only, e.in_function) for e in found}
    assert ("agent.incidents.correlator", "agent.incidents.titles", False, False) in pairs
    assert ("agent.incidents", "agent.incidents.correlator", False, True) in pairs  # inside correlate()
    assert ("agent.incidents", "agent.context", True, False) in pairs  # under TYPE_CHECKING


def test_there_is_no_import_circle_among_the_project_modules() -> None:
    # Imports inside functions count: they run when the function does, and a circle through one
    # is still a circle of the design. Imports for type checking only do not run.
    assert cycles(runtime_graph(_edges())) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_is_on_a_floor() -> None:
    assert sorted(m for m in modules(REPO) if not any(room(m) in rooms for _, rooms in FLOORS)) == []


def test_no_module_imports_from_a_floor_above_its_own() -> None:
    upward = [_where(e) for e in _edges() if floor_of(e.target) > floor_of(e.source)]
    assert upward == []


def test_detectors_and_the_flow_types_import_nothing_of_the_agent_above_them() -> None:
    ground = FLOORS[0][1]
    found = [_where(e) for e in _edges() if room(e.source) in ("detectors", "agent.flow") and room(e.target) not in ground]
    assert found == []
    assert [_where(e) for e in _edges() if room(e.source) == "detectors" and room(e.target) != "detectors"] == []


def test_the_store_imports_the_ground_floor_only() -> None:
    ground = FLOORS[0][1]
    found = [_where(e) for e in _edges() if room(e.source) == "agent.store" and room(e.target) not in (*ground, "agent.store")]
    assert found == []


def test_no_function_is_longer_than_a_screen() -> None:
    found = [f"{path.relative_to(REPO)}:{f.line} {f.name} is {f.lines} lines"
             for path in modules(REPO).values()
             for f in long_functions(path.read_text(encoding="utf-8"), limit=MAX_FUNCTION_LINES)]
    assert found == [], f"longer than {MAX_FUNCTION_LINES} lines: split into helpers named for what they do"


def test_the_length_finder_finds_long_functions_nested_ones_and_methods_included() -> None:
    source = textwrap.dedent("""\
        def short():
            return 1


        async def fetch():
            a = 1
            b = 2
            c = 3
            return a + b + c


        class Store:
            @property
            def rows(self):
                def inner():
                    return [
                        1,
                        2,
                    ]
                return inner()
        """)
    found = long_functions(source, limit=4)
    assert [(f.name, f.line, f.lines) for f in found] == [("fetch", 5, 5), ("Store.rows", 14, 7),
                                                          ("Store.rows.inner", 15, 5)]
    assert long_functions(source, limit=7) == []
