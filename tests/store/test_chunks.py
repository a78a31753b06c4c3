"""The chunk codec on its own: chunks of any size come back in order, and regular data packs small."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from agent.store import chunks
from agent.store.chunks import CHUNK_US, US, Decoded

HOUR0 = 1_772_442_000 * US  # 2026-03-02 09:00 UTC, on an hour


def test_chunks_of_different_sizes_decode_in_key_and_time_order():
    # key 1: 3 samples in hour 0, 1 in hour 1; key 2: 2 samples in hour 0 (before key 1's hour 1)
    samples = Decoded(np.array([1, 1, 1, 1, 2, 2]),
                      np.array([HOUR0, HOUR0 + 1, HOUR0 + 7, HOUR0 + CHUNK_US, HOUR0 + 5, HOUR0 + 6]),
                      np.array([0.5, float("nan"), -0.0, 3.0, 1e300, 2.0]))
    rows = chunks.encode(samples)
    assert [(k, s, n) for k, s, n, _, _ in rows] == [(1, HOUR0 // US, 3), (1, HOUR0 // US + 3600, 1),
                                                     (2, HOUR0 // US, 2)]
    back = chunks.decode(rows)
    assert back.keys.tolist() == samples.keys.tolist() and back.ts_us.tolist() == samples.ts_us.tolist()
    assert back.values.view("uint64").tolist() == samples.values.view("uint64").tolist()


def test_a_regular_scrape_of_short_decimals_packs_under_two_bytes_a_sample():
    rng = np.random.default_rng(3)
    values = np.round(21 + np.cumsum(rng.normal(0, 0.05, 60)), 2)  # a temperature, each minute
    rows = chunks.encode(Decoded(np.zeros(60, "int64"), HOUR0 + 60 * US * np.arange(60), values))
    assert [r[3] for r in rows] == [3]  # decimal, two digits
    assert len(rows[0][4]) / 60 < 2.0
    noise = rng.random(60)  # full-precision floats: the XOR codec, still well under 16 bytes
    rows = chunks.encode(Decoded(np.zeros(60, "int64"), HOUR0 + 60 * US * np.arange(60), noise))
    assert [r[3] for r in rows] == [chunks.XOR] and len(rows[0][4]) / 60 < 9.0


def test_a_damaged_chunk_is_refused_with_its_series_key():
    rows = chunks.encode(Decoded(np.array([7, 7]), np.array([HOUR0, HOUR0 + US]), np.array([1.0, 2.0])))
    key, start, n, codec, _ = rows[0]
    short = zlib.compress(b"\0" * 20, 6, -15)
    with pytest.raises(ValueError, match=r"expected 32 bytes each unpacked, found 20 bytes in 1 chunks \(series keys \[7\]\)"):
        chunks.decode([(key, start, n, codec, short)])


def test_whole_numbers_too_large_for_six_digits_still_pack_as_integers():
    values = 64 * 2.0 ** 30 - 4096.0 * np.arange(60)  # free memory of a 64 GiB host, in bytes
    rows = chunks.encode(Decoded(np.zeros(60, "int64"), HOUR0 + 60 * US * np.arange(60), values))
    assert [r[3] for r in rows] == [1]  # decimal, no digits
    assert chunks.decode(rows).values.tolist() == values.tolist()
