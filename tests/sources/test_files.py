"""CSV replay: NAB's timestamp,value files and wide CSVs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agent.sources import FetchError
from agent.sources.files import parse_series_name, read_csv
from tests.sources.conftest import history

NYC = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"


@pytest.mark.skipif(not NYC.exists(), reason=f"needs the NAB data at {NYC}")
def test_a_nab_file_replays_as_one_series_in_utc(make_ctx):
    ctx = make_ctx(f"sources:\n  kind: file\n  file:\n    paths: [{NYC}]\n")
    start, end = pd.Timestamp("2014-07-01", tz="UTC"), pd.Timestamp("2014-07-01 02:00", tz="UTC")
    samples = history(ctx, start, end)
    assert list(samples.values.columns) == ['replay{series="nyc_taxi"}']
    assert samples.series['replay{series="nyc_taxi"}'].labels == {"series": "nyc_taxi"}
    assert samples.values.index.name == "ts" and str(samples.values.index.tz) == "UTC"
    assert samples.values.iloc[:2, 0].tolist() == [10844.0, 8127.0]
    assert len(samples.values) == 5  # every 30 minutes, both ends included


def test_a_wide_csv_keeps_series_ids_and_gaps(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text('timestamp,"cpu{host=""a""}",mem\n1700000000,0.5,10\n1700000060,,11\n1700000120,inf,12\n')
    samples = read_csv(path)
    assert list(samples.values.columns) == ['cpu{host="a"}', "mem"]
    assert samples.series['cpu{host="a"}'].metric == "cpu" and samples.series['cpu{host="a"}'].labels == {"host": "a"}
    assert samples.values['cpu{host="a"}'].isna().tolist() == [False, True, True]  # empty and inf are gaps
    assert samples.values.index[0] == pd.Timestamp(1700000000, unit="s", tz="UTC")


def test_a_missing_file_is_a_fetch_error(tmp_path):
    with pytest.raises(FetchError) as caught:
        read_csv(tmp_path / "absent.csv")
    assert caught.value.kind == "file"
    assert str(caught.value).startswith(f"source file ({tmp_path / 'absent.csv'}): cannot read CSV:")


def test_series_names_parse_back_into_labels():
    assert parse_series_name('up{job="a",path="/x\\"y"}') == ("up", {"job": "a", "path": '/x"y'})
    assert parse_series_name("plain") == ("plain", {})
