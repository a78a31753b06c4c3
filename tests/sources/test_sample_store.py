"""SampleStore: the series registry and the bounded history of the scrape source."""

from __future__ import annotations

from agent.flow.samples import SeriesInfo
from agent.store.samples import CounterReading


def info(sid: str, **labels: str) -> SeriesInfo:
    return SeriesInfo(series_id=sid, metric=sid.split("{")[0], labels=labels)


def test_series_are_found_by_label_even_with_hostile_values(store):
    hostile = "x'); DROP TABLE samples; --\""
    store.record_samples([info("a", job=hostile), info("b", job="node")], [("a", 10.0, 1.0), ("b", 10.0, 2.0)], now=10.0)
    assert [s.series_id for s in store.known_series(labels={"job": hostile})] == ["a"]
    assert store.known_series(labels={"job": hostile})[0].labels == {"job": hostile}
    assert store.sample_history(0, 20, ["b"]).values.tolist() == [["b", 10.0, 2.0]]


def test_prune_deletes_oldest_first_in_bounded_batches_and_forgets_dead_series(store):
    store.record_samples([info("old")], [("old", float(t), 1.0) for t in range(5)], now=4.0)
    store.record_samples([info("new")], [("new", 100.0, 1.0)], now=100.0)
    assert store.prune_scrape_history(50.0, max_rows=3) == 3
    assert store.sample_history(0, 200)["ts"].tolist() == [3.0, 4.0, 100.0]
    assert [s.series_id for s in store.known_series()] == ["new", "old"]  # old still has samples
    assert store.prune_scrape_history(50.0, max_rows=3) == 2
    assert [s.series_id for s in store.known_series()] == ["new"]


def test_counter_readings_round_trip(store):
    store.save_counter_readings([CounterReading(key="c_total", ts=5.0, value=7.0)])
    assert store.counter_readings(["c_total", "other"]) == {"c_total": CounterReading(key="c_total", ts=5.0, value=7.0)}
