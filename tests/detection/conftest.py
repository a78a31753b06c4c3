"""Synthetic frames and Contexts on real SQLite stores for the detection stage's tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.config import AgentConfig
from agent.context import Context
from agent.detection import Engine
from agent.flow.detection import Detection
from agent.flow.samples import Samples, SeriesInfo, series_id
from agent.pipeline import Cycle, Pipeline
from agent.store import open_store
from detectors.base import Hit

# Cycles end on this minute; the history runs up to it.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
STEP_S = 60


def info(metric: str, **labels: str) -> SeriesInfo:
    return SeriesInfo(series_id=series_id(metric, labels), metric=metric, labels=labels)


def seasonal_values(n: int, *, seed: int, level: float = 50.0, amplitude: float = 10.0,
                    noise: float = 0.5) -> np.ndarray:
    """``n`` one-minute points with a daily cycle and gaussian noise, ending at T0."""
    minutes = np.arange(-n + 1, 1) + T0.hour * 60 + T0.minute
    rng = np.random.default_rng(seed)
    return level + amplitude * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, noise, n)


def index(n: int, end: datetime = T0) -> pd.DatetimeIndex:
    return pd.date_range(end=end, periods=n, freq=f"{STEP_S}s", tz="UTC", name="ts")


def samples(columns: Sequence[tuple[SeriesInfo, np.ndarray | list[float]]], *, end: datetime = T0,
            gaps: frozenset[str] = frozenset()) -> Samples:
    """A frame of (series, values) pairs whose last row is at ``end``."""
    n = len(columns[0][1])
    frame = pd.DataFrame({i.series_id: np.asarray(v, dtype="float64") for i, v in columns},
                         index=index(n, end))
    return Samples(values=frame, series={i.series_id: i for i, _ in columns}, gaps=gaps)


def cycle_at(at: datetime, frame: Samples) -> Cycle:
    return Cycle(started_at=at, samples=frame)


# The pipeline of each Context a test made (by id), as the daemon holds one; emptied after each test.
_PIPELINES: dict[int, Pipeline] = {}


def engine_of(ctx: Context) -> Engine:
    """The detect stage of ``ctx``'s pipeline."""
    return _PIPELINES[id(ctx)].engine


def detection(ctx: Context, cycle: Cycle) -> Detection:
    """The refits due at the cycle's time on its frame (the daemon's refit job, as if it had run
    just before the cycle), then the cycle's detect stage."""
    engine = engine_of(ctx)
    engine.refit(now=cycle.started_at, samples=cycle.samples)
    return engine.detect(cycle.samples, now=cycle.started_at)


def detect(ctx: Context, cycle: Cycle) -> list[Hit]:
    """``detection``'s hits."""
    return detection(ctx, cycle).hits


@pytest.fixture
def make_ctx(make_config: Callable[[str], AgentConfig], tmp_path: Path) -> Callable[..., Context]:
    """A Context on a real store in ``tmp_path/<state>`` (the same store for every call with the
    same ``state``), with a pipeline of its own (``engine_of``, ``detect``)."""
    contexts: list[Context] = []

    def make(detectors_yaml: str = "", interval: str = "60s", state: str = "state") -> Context:
        state_dir = tmp_path / state
        config = make_config(f"agent:\n  state_dir: {state_dir}\n  interval: {interval}\n{detectors_yaml}")
        ctx = Context(config=config, store=open_store(state_dir), state_dir=state_dir)
        contexts.append(ctx)
        _PIPELINES[id(ctx)] = Pipeline(ctx)
        return ctx

    yield make
    for ctx in contexts:
        _PIPELINES.pop(id(ctx)).close()
        ctx.store.close()


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
