"""Source: replay of CSV files, for backtests and tests.

Two layouts: NAB's ``timestamp,value`` (one series per file, named after the file:
``<metric>{series="<file stem>"}``) and wide CSVs (a timestamp column, then one column per series;
a column named like a series_id, ``name{k="v"}``, keeps that identity). Timestamps without a
zone are taken as UTC; numbers are epoch seconds. Files are read once and kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agent.config.sources import FileSourceConfig
from agent.flow.samples import Samples, SeriesInfo, series_id
from agent.sources.base import FailureKind, FetchError
from agent.sources.frame import empty_index

SOURCE = "file"
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_series_name(name: str) -> tuple[str, dict[str, str]]:
    """``metric{a="1",b="2"}`` → ("metric", {"a": "1", "b": "2"}); a plain name has no labels."""
    if "{" not in name or not name.endswith("}"):
        return name, {}
    metric, body = name[:-1].split("{", 1)
    labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\") for k, v in _LABEL.findall(body)}
    return metric, labels


def read_csv(path: Path, *, timestamp_column: str = "timestamp", metric: str = "replay") -> Samples:
    """One CSV file as Samples (raises FetchError when it cannot be read)."""
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise FetchError(SOURCE, str(path), FailureKind.FILE, f"cannot read CSV: {exc}") from None
    column = timestamp_column if timestamp_column in raw.columns else raw.columns[0]
    stamps = raw.pop(column)
    if pd.api.types.is_numeric_dtype(stamps):
        index = pd.to_datetime(stamps.astype("float64"), unit="s", utc=True)
    else:
        index = pd.to_datetime(stamps, utc=True, format="mixed")
    index = pd.DatetimeIndex(index, name="ts").as_unit("ns")
    if list(raw.columns) == ["value"]:
        labels = {"series": path.stem}
        sid = series_id(metric, labels)
        infos = {sid: SeriesInfo(series_id=sid, metric=metric, labels=labels)}
        raw.columns = [sid]
    else:
        infos = {}
        for col in raw.columns:
            name, labels = parse_series_name(str(col))
            infos[str(col)] = SeriesInfo(series_id=str(col), metric=name, labels=labels)
    values = raw.apply(pd.to_numeric, errors="coerce").astype("float64")
    values.index = index
    values = values[~values.index.duplicated(keep="last")].sort_index()
    values = values.replace([np.inf, -np.inf], np.nan)
    return Samples(values=values, series=infos)


class FileSource:
    name = SOURCE

    def __init__(self, config: FileSourceConfig) -> None:
        self.config = config
        self._loaded: Samples | None = None

    def close(self) -> None:
        self._loaded = None

    def load(self) -> Samples:
        if self._loaded is None:
            parts = [read_csv(Path(p), timestamp_column=self.config.timestamp_column, metric=self.config.metric)
                     for p in self.config.paths]
            values = pd.concat([p.values for p in parts], axis=1, sort=True) if parts else pd.DataFrame(index=empty_index())
            values = values.loc[:, ~values.columns.duplicated()]
            values.index.name = "ts"
            series = {k: v for p in parts for k, v in p.series.items()}
            self._loaded = Samples(values=values.astype("float64"), series=series)
        return self._loaded

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, series_ids: Sequence[str] | None = None) -> Samples:
        whole = self.load()
        values = whole.values.loc[(whole.values.index >= start) & (whole.values.index <= end)]
        if series_ids is not None:
            values = values[[c for c in values.columns if c in set(series_ids)]]
        values = values.dropna(how="all")
        return Samples(values=values, series={c: whole.series[c] for c in values.columns})
