"""The error tree drawn in ``agent/errors.py`` is the real one: every ``AiopsError`` subclass of
the codebase is drawn under its base class, with its module when it lives elsewhere."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re

import agent.errors
from agent.errors import AiopsError

PACKAGES = ("agent", "detectors", "remediations", "demo")
_LINE = re.compile(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+) {2,}(?P<text>.*?)(?: \((?P<module>[\w.]+)\))?$")


def drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """Each class drawn in the docstring: its drawn parent and its module in parentheses."""
    doc = agent.errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, tuple[str | None, str | None]] = {}
    stack: list[tuple[int, str]] = []  # (column, name) of the open ancestors
    for line in block.splitlines():
        match = _LINE.match(line)
        assert match, f"agent/errors.py: cannot read tree line {line!r}"
        column = len(match["lead"])
        while stack and stack[-1][0] >= column:
            stack.pop()
        drawn[match["name"]] = (stack[-1][1] if stack else None, match["module"])
        stack.append((column, match["name"]))
    return drawn


def all_errors() -> list[type[AiopsError]]:
    """Every subclass of AiopsError, after importing every module of the product's packages."""
    for name in PACKAGES:
        if importlib.util.find_spec(name) is None:
            continue  # the demo lives outside the product on some layouts
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)
    found: list[type[AiopsError]] = []
    todo = [AiopsError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_the_tree_reads_as_drawn():
    drawn = drawn_tree()
    assert drawn["AiopsError"] == (None, None)
    assert drawn["PlaybookError"] == ("RemediationError", "remediations.playbooks")
    assert drawn["NotFittedError"] == ("DetectorError", "detectors.errors")


def test_every_aiops_error_is_drawn_under_its_base():
    drawn = drawn_tree()
    errors = all_errors()
    assert len(errors) > 10  # the walk imported the packages
    for cls in errors:
        assert cls.__name__ in drawn, f"{cls.__module__}.{cls.__name__} is not drawn in agent/errors.py's tree"
        parent, module = drawn[cls.__name__]
        if cls is not AiopsError:
            assert parent == cls.__bases__[0].__name__, f"{cls.__name__}: drawn under {parent}"
        expected = None if cls.__module__ == "agent.errors" else cls.__module__
        assert module == expected, f"{cls.__name__}: drawn in ({module}), defined in {cls.__module__}"


def test_nothing_drawn_is_gone():
    names = {cls.__name__ for cls in all_errors()} | {"DetectorError", "NotFittedError"}
    assert set(drawn_tree()) - names == set()
