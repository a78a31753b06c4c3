"""``detectors`` is the one registry: every detector class is exported from the package, and the
kinds a config names resolve through it."""

from __future__ import annotations

import importlib
import pkgutil
import typing

import detectors
from agent.config.detectors import Rule
from detectors import KINDS, Detector, detector_class


def _defined_detectors() -> dict[str, type]:
    found: dict[str, type] = {}
    for module in pkgutil.iter_modules(detectors.__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"detectors.{module.name}")
        found |= {name: obj for name, obj in vars(loaded).items()
                  if isinstance(obj, type) and issubclass(obj, Detector) and obj is not Detector
                  and obj.__module__ == loaded.__name__}
    return found


def test_every_detector_class_is_exported_by_the_package_and_has_a_kind() -> None:
    defined = _defined_detectors()
    assert {"ForecastDetector", "SubspaceDetector"} <= set(defined)
    assert {name: getattr(detectors, name) for name in defined} == defined
    assert set(defined) <= set(detectors.__all__)
    assert sorted(KINDS.values()) == sorted(defined)


def test_from_detectors_import_the_default_detector() -> None:
    from detectors import ForecastDetector, SubspaceDetector

    assert (ForecastDetector.__module__, SubspaceDetector.__module__) == ("detectors.forecast", "detectors.subspace")


def test_every_rule_kind_of_the_config_resolves_through_the_registry() -> None:
    rules = typing.get_args(typing.get_args(Rule)[0])
    kinds = {typing.get_args(rule.model_fields["kind"].annotation)[0] for rule in rules}
    assert kinds == set(KINDS) - {"drift"}  # drift models have a section of their own
    assert {kind: detector_class(kind) for kind in KINDS} == {
        kind: getattr(detectors, name) for kind, name in KINDS.items()}
