"""The packed layout of sample history: one chunk per series per hour, encoded and decoded with
numpy across many chunks at once (no SQL here; ``agent.store.samples`` stores the chunks).

A chunk holds ``n`` samples of one series whose timestamps fall in ``[start, start + CHUNK_S)``,
sorted and unique. Timestamps are integer microseconds (what an aware datetime holds), kept as
the offset of the first from ``start``, then the interval, then each change of interval: a
regular scrape leaves zeros. Values are float64, kept bit for bit, one of two ways per chunk
(``codec``):

- ``XOR`` (0): each value's bits XORed with the previous value's: a value that repeats, or moves
  only in its low bits, leaves zero bytes. Always exact, NaN and infinities included.
- decimal (1 + d): every value is ``k / 10**d`` exactly, bit for bit (integers with d = 0,
  temperatures with d = 1 or 2): the integers ``k`` are kept as differences, which are small.

Both parts are zigzagged to unsigned, their bytes shuffled into planes (all first bytes, then
all second bytes...) so the zero high bytes of small numbers sit together, and the whole is
compressed with zlib (raw deflate).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHUNK_S = 3600
US = 1_000_000
CHUNK_US = CHUNK_S * US

XOR = 0
MAX_DIGITS = 6  # decimal codecs 1..7: k / 10**0 .. k / 10**6
_LEVEL = 6
_RAW = -15  # raw deflate: no zlib header or checksum (SQLite's pages carry their own integrity)
_EXACT = 2.0 ** 53  # |k| past this is not an exact float64


@dataclass(frozen=True, slots=True)
class Decoded:
    """Samples as parallel arrays, sorted by (key, ts_us) and unique in it."""

    keys: np.ndarray    # int64 series keys
    ts_us: np.ndarray   # int64 epoch microseconds
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def empty(cls) -> Decoded:
        return cls(np.empty(0, "int64"), np.empty(0, "int64"), np.empty(0, "float64"))


ChunkRow = tuple[int, int, int, int, bytes]  # (series_key, start epoch s, n, codec, data)


def to_us(ts_s: np.ndarray | Sequence[float]) -> np.ndarray:
    """Epoch seconds (float) to integer microseconds: exact for any time a datetime can hold."""
    return np.rint(np.asarray(ts_s, dtype="float64") * US).astype("int64")


def to_s(ts_us: np.ndarray) -> np.ndarray:
    return ts_us / US


def chunk_start(ts_us: np.ndarray | int) -> np.ndarray | int:
    """The epoch second at which the chunk holding ``ts_us`` starts."""
    return (ts_us // CHUNK_US) * CHUNK_S


# -- encoding ------------------------------------------------------------------------------------

def encode(samples: Decoded) -> list[ChunkRow]:
    """One row per (key, chunk) of ``samples`` (sorted by (key, ts_us), unique)."""
    if not len(samples):
        return []
    starts = chunk_start(samples.ts_us)
    cut = np.flatnonzero((np.diff(samples.keys) != 0) | (np.diff(starts) != 0)) + 1
    first = np.concatenate(([0], cut))
    sizes = np.diff(np.concatenate((first, [len(samples)])))
    rows: list[ChunkRow] = []
    for n in np.unique(sizes):
        which = first[sizes == n]
        at = which[:, None] + np.arange(n)
        rows += _encode_same_size(samples.keys[which], starts[which], samples.ts_us[at], samples.values[at])
    rows.sort(key=lambda row: (row[0], row[1]))
    return rows


def _encode_same_size(keys: np.ndarray, starts: np.ndarray, ts: np.ndarray, values: np.ndarray) -> list[ChunkRow]:
    """Chunks of equal size n: ``ts`` and ``values`` are (chunks, n) matrices."""
    n = ts.shape[1]
    steps = np.diff(ts, axis=1, prepend=(starts * US)[:, None])
    steps[:, 2:] = steps[:, 2:] - steps[:, 1:-1].copy()
    ts_planes = _planes(_zigzag(steps))
    codecs = _decimal_codecs(values)
    payload = np.empty((len(keys), n), dtype="uint64")
    xor = codecs == XOR
    if xor.any():
        bits = values[xor].view("uint64")
        payload[xor] = np.concatenate((bits[:, :1], bits[:, 1:] ^ bits[:, :-1]), axis=1)
    for codec in np.unique(codecs[~xor]):
        mine = codecs == codec
        k = np.rint(values[mine] * 10.0 ** (codec - 1)).astype("int64")
        payload[mine] = _zigzag(np.diff(k, axis=1, prepend=0))
    value_planes = _planes(payload)
    both = np.concatenate((ts_planes, value_planes), axis=1)
    return [(int(key), int(start), n, int(codec), zlib.compress(row.tobytes(), _LEVEL, _RAW))
            for key, start, codec, row in zip(keys, starts, codecs, both)]


def _decimal_codecs(values: np.ndarray) -> np.ndarray:
    """Per row, 1 + the fewest decimal digits that give back every value bit for bit, else XOR."""
    codecs = np.full(len(values), XOR, dtype="int64")
    finite = np.isfinite(values).all(axis=1)
    largest = np.where(finite, np.abs(np.where(np.isfinite(values), values, 0.0)).max(axis=1), np.inf)
    open_ = finite.copy()
    bits = values.view("uint64")
    for digits in range(MAX_DIGITS + 1):
        scale = 10.0 ** digits
        trying = open_ & (largest * scale < _EXACT)  # k must be an exact float64 (memory in bytes: d = 0)
        if not trying.any():
            break
        back = np.rint(values[trying] * scale).astype("int64") / scale
        exact = (back.view("uint64") == bits[trying]).all(axis=1)
        rows = np.flatnonzero(trying)[exact]
        codecs[rows] = 1 + digits
        open_[rows] = False
    return codecs


def _zigzag(x: np.ndarray) -> np.ndarray:
    return ((x << 1) ^ (x >> 63)).view("uint64")


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return ((u >> np.uint64(1)) ^ (np.uint64(0) - (u & np.uint64(1)))).view("int64")


def _planes(u: np.ndarray) -> np.ndarray:
    """(chunks, n) uint64 → (chunks, 8 n) bytes: byte 0 of every value, then byte 1, ..."""
    m, n = u.shape
    return np.ascontiguousarray(u.view("uint8").reshape(m, n, 8).transpose(0, 2, 1)).reshape(m, 8 * n)


def _unplanes(planes: np.ndarray, n: int) -> np.ndarray:
    m = planes.shape[0]
    return np.ascontiguousarray(planes.reshape(m, 8, n).transpose(0, 2, 1)).view("uint64").reshape(m, n)


# -- decoding ------------------------------------------------------------------------------------

def decode(rows: Sequence[Sequence]) -> Decoded:
    """Samples of ``rows`` ((series_key, start, n, codec, data)), in the order of the rows."""
    if not rows:
        return Decoded.empty()
    keys = np.fromiter((r[0] for r in rows), "int64", len(rows))
    starts = np.fromiter((r[1] for r in rows), "int64", len(rows))
    sizes = np.fromiter((r[2] for r in rows), "int64", len(rows))
    codecs = np.fromiter((r[3] for r in rows), "int64", len(rows))
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    total = int(sizes.sum())
    out_ts = np.empty(total, "int64")
    out_values = np.empty(total, "float64")
    group = sizes * 16 + codecs  # codec < 16: one group per (size, codec)
    for g in np.unique(group):
        which = np.flatnonzero(group == g)
        n, codec = int(sizes[which[0]]), int(codecs[which[0]])
        raw = b"".join([zlib.decompress(rows[i][4], _RAW) for i in which])
        if len(raw) != len(which) * 16 * n:
            raise ValueError(f"sample chunks of {n} samples: expected {16 * n} bytes each unpacked, found "
                             f"{len(raw)} bytes in {len(which)} chunks (series keys {sorted(set(keys[which].tolist()))[:5]})")
        planes = np.frombuffer(raw, dtype="uint8").reshape(len(which), 16 * n)
        steps = _unzigzag(_unplanes(planes[:, :8 * n], n))
        steps[:, 1:] = np.cumsum(steps[:, 1:], axis=1)
        ts = np.cumsum(steps, axis=1) + (starts[which] * US)[:, None]
        payload = _unplanes(planes[:, 8 * n:], n)
        if codec == XOR:
            values = np.bitwise_xor.accumulate(payload, axis=1).view("float64")
        else:
            values = np.cumsum(_unzigzag(payload), axis=1) / 10.0 ** (codec - 1)
        at = (offsets[which][:, None] + np.arange(n)).ravel()
        out_ts[at] = ts.ravel()
        out_values[at] = values.ravel()
    return Decoded(np.repeat(keys, sizes), out_ts, out_values)


def merge(older: Decoded, newer: Decoded) -> Decoded:
    """Both sets of samples in one, sorted by (key, ts_us); where both hold a (key, ts_us),
    ``newer`` wins."""
    if not len(newer):
        return older
    if not len(older):
        return sort_unique(newer)
    return sort_unique(Decoded(np.concatenate((older.keys, newer.keys)), np.concatenate((older.ts_us, newer.ts_us)),
                               np.concatenate((older.values, newer.values))))


def sort_unique(samples: Decoded) -> Decoded:
    """Sorted by (key, ts_us); of repeated (key, ts_us) the last given stays (INSERT OR REPLACE)."""
    keys, ts, values = samples.keys, samples.ts_us, samples.values
    step = np.diff(keys)
    if (step > 0).all() or ((step >= 0).all() and (np.diff(ts)[step == 0] > 0).all()):
        return samples  # already in order: the usual case, chunks read in key order
    order = np.lexsort((ts, keys))  # stable: of two equal samples the later given stays last
    keys, ts, values = keys[order], ts[order], values[order]
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = (keys[1:] != keys[:-1]) | (ts[1:] != ts[:-1])
    return Decoded(keys[last], ts[last], values[last])
