"""The example config shows every detectors key, and it validates."""

from __future__ import annotations

from pathlib import Path

import yaml

from agent.config import load_config
from agent.config.detectors import (
    DetectorsConfig,
    DriftModel,
    ForecastRule,
    GaugesConfig,
    IForestRule,
    RefitConfig,
    SeasonalRule,
    SeriesMatcher,
    Slo,
    ThresholdRule,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "agent.example.yaml"


def test_the_example_shows_every_detectors_key():
    section = yaml.safe_load(EXAMPLE.read_text())["detectors"]
    shown = {
        DetectorsConfig: set(section),
        RefitConfig: set(section["refit"]),
        GaugesConfig: set(section["gauges"]),
        Slo: set().union(*(set(s) for s in section["slos"])),
        DriftModel: set().union(*(set(m) for m in section["drift"])),
        SeriesMatcher: set().union(*(set(m) for r in section["rules"] + section["slos"] for m in r["match"])),
    }
    for model, kind in ((ForecastRule, "forecast"), (SeasonalRule, "seasonal"), (IForestRule, "iforest"),
                        (ThresholdRule, "threshold")):
        shown[model] = set().union(*(set(r) for r in section["rules"] if r["kind"] == kind))
    for model, keys in shown.items():
        assert set(model.model_fields) - keys == set(), model.__name__


def test_the_example_validates():
    config = load_config(EXAMPLE).detectors
    assert [r.name for r in config.rules] == ["forecast", "seasonal", "host_iforest", "agent_scrape_errors"]
    assert [m.name for m in config.drift] == ["fraud"]
