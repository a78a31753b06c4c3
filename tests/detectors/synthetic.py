"""Synthetic series with known shape for detector tests: seeded, small, and bounded noise.

Noise is uniform (bounded), so a clean series can never cross a threshold by luck: a test that
expects no hits on clean data checks the model, not the seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday
STEP = pd.Timedelta("5min")
DAY = 288  # points per day at 5-minute resolution


def index(n: int, start: pd.Timestamp = START, step: pd.Timedelta = STEP) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq=step)


def seasonal_frame(days: float = 5, columns: int = 3, seed: int = 0, noise: float = 1.0) -> pd.DataFrame:
    """Daily sine (amplitude 20..40) on a level of 100..300 plus uniform noise of +-``noise``."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY)
    phase = 2 * np.pi * np.arange(n) / DAY
    amplitude = np.linspace(20, 40, columns)
    level = np.linspace(100, 300, columns)
    values = level + amplitude * np.sin(phase)[:, None] + rng.uniform(-noise, noise, (n, columns))
    return pd.DataFrame(values, index=index(n), columns=[f"s{i}" for i in range(columns)])


def split(frame: pd.DataFrame, history_days: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(history_days * DAY)
    return frame.iloc[:cut], frame.iloc[cut:].copy()
