"""Source: any server with Prometheus' HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics).

Every configured query is evaluated with ``/api/v1/query_range`` on a grid aligned to its step, so
successive cycles and chunks land on the same timestamps. A query that is a plain selector is read
with the remote-read protocol instead while the server offers it (``remote_read``), its raw samples
placed on the same grid as query_range places them (``agent.sources.remote_read``). Ranges longer than the server's
11,000-points-per-series limit are split into chunks. One Session keeps connections open.
Connection errors, 429 and 5xx are retried with exponential backoff and jitter; a timeout is not
(a server that is slow now stays slow, and retrying would multiply the cycle's time), and after a
connection failure or timeout the remaining queries of the round are not attempted either.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
import requests

from agent.config.sources import PrometheusSourceConfig, QueryConfig
from agent.flow.samples import Samples, SeriesInfo, bounded_labels, series_id
from agent.log import kv
from agent.metrics import Metrics
from agent.sources import http, promjson, remote_read
from agent.sources.base import FailureKind, FetchError
from agent.sources.frame import empty_index, histogram_id, to_index, with_gaps
from agent.sources.health import TargetHealth

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCE = "prometheus"
_MAX_SLEEP_S = 10.0
# A decoded JSON point costs ~150 bytes of Python objects: 100k points keep one response ~15 MB.
SAMPLES_PER_REQUEST = 100_000
# A query_range answer is read in pieces of this size; one series' text (11,000 points and its
# labels) stays far below MAX_SERIES_CHARS. An answer in another layout is read whole, up to
# MAX_OTHER_BYTES.
READ_CHUNK_BYTES = 1 << 20
MAX_SERIES_CHARS = 32 << 20
MAX_OTHER_BYTES = 64 << 20
PROBE_POINTS = 60
PARALLEL_REQUESTS = 2
# A raw sample costs ~40 bytes between the compressed body, the parsed message and the arrays.
SAMPLES_PER_READ = 1_000_000
# A remote-read answer is one snappy block, decoded whole: one past this size (decompressed; a
# query of hundreds of thousands of series) is not read, and the query goes by query_range, whose
# answer is read as it arrives within series_limit.
READ_MAX_BYTES = 128 << 20
READ_HEADERS = {"Content-Type": remote_read.CONTENT_TYPE, "Content-Encoding": "snappy",
                "Accept-Encoding": "snappy", "X-Prometheus-Remote-Read-Version": "0.1.0"}


@dataclass(slots=True)
class FetchStats:
    """Where the time of the last fetch went (the benchmark reads it)."""

    requests: int = 0
    bytes: int = 0
    json_decode_s: float = 0.0
    read_decode_s: float = 0.0  # remote read: snappy, protobuf and placing samples on the grid
    points: int = 0
    read_queries: int = 0  # queries answered by remote read


@dataclass(slots=True, kw_only=True)
class _QueryFrame:
    grid: np.ndarray  # epoch seconds
    infos: list[SeriesInfo] = field(default_factory=list)
    columns: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer:
    series: list[promjson.Series]  # (labels, epoch s, values) of the series kept
    skipped: int = 0  # series left unread: past series_limit while the answer was read


@dataclass(frozen=True, slots=True, kw_only=True)
class _Read:
    series: list[promjson.Series]  # placed on the grid: (labels, epoch s, values)
    samples: int  # raw samples the server sent


class _Unsupported(Exception):
    """The server does not answer remote read (a 4xx, or not a protobuf body)."""


class _ReadTooLarge(Exception):
    """A remote-read answer past ``read_max_bytes``: this query goes by query_range from now on."""


class PrometheusSource:
    name = SOURCE

    def __init__(self, config: PrometheusSourceConfig, *, metrics: Metrics, health: TargetHealth,
                 series_limit: int) -> None:
        self.config = config
        self.metrics = metrics
        self.health = health
        self.series_limit = series_limit
        self.url = config.url.rstrip("/") + "/api/v1/query_range"
        self.read_url = config.url.rstrip("/") + "/api/v1/read"
        # Cleared for good (and logged once) when the server refuses remote read under ``auto``.
        self.remote_read = config.remote_read != "off"
        self.session = requests.Session()
        if config.bearer_token is not None:
            self.session.headers["Authorization"] = f"Bearer {config.bearer_token.get_secret_value()}"
        elif config.username:
            password = config.password.get_secret_value() if config.password else ""
            self.session.auth = (config.username, password)
        self.session.verify = str(config.ca_file) if config.ca_file and config.verify_tls else config.verify_tls
        self.stats = FetchStats()
        health.describe(SOURCE, {q.name: config.url for q in config.queries})
        self._known: dict[str, dict[str, SeriesInfo]] = {}
        self._density: dict[str, float] = {}  # raw samples per second of range, per query (remote read)
        self._range_only: set[str] = set()  # queries whose remote-read answers were too large
        self.read_max_bytes = READ_MAX_BYTES
        self.failed: list[str] = []  # queries that failed in the last fetch

    def close(self) -> None:
        self.session.close()

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, queries: Sequence[QueryConfig] | None = None) -> Samples:
        """Every query over ``[start, end]``; a query that fails leaves its known series as gaps."""
        self.stats = FetchStats()
        self.failed = []
        frames: list[pd.DataFrame] = []
        series: dict[str, SeriesInfo] = {}
        buckets: dict[str, pd.DataFrame] = {}
        missing: list[SeriesInfo] = []
        fatal: FetchError | None = None
        for query in queries if queries is not None else self.config.queries:
            try:
                if fatal is not None:
                    raise FetchError(SOURCE, query.name, fatal.kind, fatal.problem)
                qf = self.fetch_query(query, start.timestamp(), end.timestamp())
            except FetchError as exc:
                if exc.kind in (FailureKind.CONNECTION, FailureKind.TIMEOUT):
                    fatal = exc
                self.health.down(exc)
                self.failed.append(query.name)
                missing += self._known.get(query.name, {}).values()
                continue
            self.health.up(SOURCE, query.name, series=len(qf.infos))
            self._known[query.name] = {i.series_id: i for i in qf.infos}
            self._place(qf, query, frames, series, buckets)
        values = pd.concat(frames, axis=1, sort=True) if frames else pd.DataFrame(index=empty_index(), dtype="float64")
        values.index.name = "ts"
        samples = Samples(values=values, series=series, buckets=buckets)
        return with_gaps(samples, [i for i in missing if i.series_id not in series])

    def _place(self, qf: _QueryFrame, query: QueryConfig, frames: list[pd.DataFrame],
               series: dict[str, SeriesInfo], buckets: dict[str, pd.DataFrame]) -> None:
        index = to_index(qf.grid)
        if query.kind == "bucket":
            grouped: dict[str, dict[float, np.ndarray]] = {}
            for info, column in zip(qf.infos, qf.columns):
                if "le" in info.labels:
                    grouped.setdefault(histogram_id(info), {})[float(info.labels["le"])] = column
            for hid, cols in grouped.items():
                buckets[hid] = pd.DataFrame(dict(sorted(cols.items())), index=index)
            return
        fresh = [(i, c) for i, c in zip(qf.infos, qf.columns) if i.series_id not in series]
        if len(fresh) < len(qf.infos):
            self.metrics.samples_dropped.labels(reason="duplicate_series").inc(len(qf.infos) - len(fresh))
        if not fresh:
            return
        matrix = np.column_stack([c for _, c in fresh])
        qf.columns.clear()
        frames.append(pd.DataFrame(matrix, index=index, columns=[i.series_id for i, _ in fresh], copy=False))
        series.update((i.series_id, i) for i, _ in fresh)

    # -- one query -----------------------------------------------------------------------------

    def fetch_query(self, query: QueryConfig, start_s: float, end_s: float) -> _QueryFrame:
        """One query on its step grid: by remote read when it is a plain selector and the server
        offers it, else by query_range."""
        matchers = remote_read.selector(query.expr) if self.remote_read and query.name not in self._range_only else None
        if matchers is not None:
            try:
                return self.read_range(query, matchers, start_s, end_s)
            except _ReadTooLarge as exc:
                self._range_only.add(query.name)
                log.warning(kv("prometheus.remote_read_too_large", query=query.name, reason=str(exc),
                               instead="query_range"))
            except _Unsupported as exc:
                if self.config.remote_read == "on":
                    raise FetchError(SOURCE, query.name, FailureKind.API_ERROR, f"remote read: {exc}") from None
                self.remote_read = False
                log.info(kv("prometheus.remote_read_off", url=self.read_url, reason=str(exc)))
        return self.query_range(query, start_s, end_s)

    def _grid(self, query: QueryConfig, start_s: float, end_s: float) -> tuple[np.ndarray, float]:
        step = query.step or self.config.step
        first = math.floor(start_s / step) * step
        last = math.floor(end_s / step) * step
        return first + step * np.arange(int(round((last - first) / step)) + 1), step

    def query_range(self, query: QueryConfig, start_s: float, end_s: float) -> _QueryFrame:
        grid, step = self._grid(query, start_s, end_s)
        first, last = grid[0], grid[-1]
        qf = _QueryFrame(grid=grid)
        where: dict[str, int] = {}

        def params(chunk_start: float, chunk_end: float) -> dict[str, str]:
            return {"query": query.expr, "start": _fmt(chunk_start), "end": _fmt(chunk_end), "step": _fmt(step)}

        # The first chunk (a short probe while the series count is unknown) sizes the others,
        # which go out PARALLEL_REQUESTS at a time: the server evaluates one while this process
        # decodes another. Merged in order, so column order and truncation stay deterministic.
        end = min(first + (self._chunk_points(query, 0) - 1) * step, last)
        self._merge_answer(query, self._query(query, params(first, end), frozenset(where)), qf, where, first, step)
        span = (self._chunk_points(query, len(where)) - 1) * step
        ranges = deque()
        chunk_start = end + step
        while chunk_start <= last:
            ranges.append((chunk_start, min(chunk_start + span, last)))
            chunk_start = ranges[-1][1] + step
        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            inflight: deque[Future] = deque()
            while ranges or inflight:
                while ranges and len(inflight) < PARALLEL_REQUESTS:
                    inflight.append(pool.submit(self._query, query, params(*ranges.popleft()), frozenset(where)))
                self._merge_answer(query, inflight.popleft().result(), qf, where, first, step)
        return qf

    def read_range(self, query: QueryConfig, matchers: list[remote_read.Matcher], start_s: float,
                   end_s: float) -> _QueryFrame:
        """A plain selector by remote read, placed on query_range's grid. Chunked by time so one
        answer holds about SAMPLES_PER_READ raw samples (the first read of a query is a short
        probe that measures how dense its samples are); two requests in flight, merged in order."""
        grid, step = self._grid(query, start_s, end_s)
        grid_ms = np.rint(grid * 1000).astype("int64")
        lookback_ms = int(round(self.config.lookback_delta * 1000))
        qf = _QueryFrame(grid=grid)
        where: dict[str, int] = {}
        density = self._density.get(query.name)
        if density is None:
            probe = grid_ms[:PROBE_POINTS]
            read = self._read(query, matchers, probe, lookback_ms)
            self._place_read(query, read, qf, where, step)
            span_s = (probe[-1] - probe[0] + lookback_ms) / 1000
            density = max(1.0, read.samples) / max(span_s, step)
            if read.samples:
                self._density[query.name] = density
            grid_ms = grid_ms[PROBE_POINTS:]
        points = int((SAMPLES_PER_READ / density - self.config.lookback_delta) // step)
        points = max(1, min(points, self.config.max_points_per_request))
        chunks = deque(grid_ms[i:i + points] for i in range(0, len(grid_ms), points))
        with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
            inflight: deque[Future] = deque()
            while chunks or inflight:
                while chunks and len(inflight) < PARALLEL_REQUESTS:
                    inflight.append(pool.submit(self._read, query, matchers, chunks.popleft(), lookback_ms))
                self._place_read(query, inflight.popleft().result(), qf, where, step)
        self.stats.read_queries += 1
        return qf

    def _read(self, query: QueryConfig, matchers: list[remote_read.Matcher], grid_ms: np.ndarray,
              lookback_ms: int) -> "_Read":
        """The raw samples behind ``grid_ms`` (reaching back one lookback), placed on it."""
        body = remote_read.encode_request(matchers, int(grid_ms[0]) - lookback_ms, int(grid_ms[-1]))
        return self._request(query, self.read_url, self._decode_read, grid_ms, lookback_ms,
                             data=body, headers=READ_HEADERS, stream=True)

    def _decode_read(self, query: QueryConfig, response: requests.Response, grid_ms: np.ndarray,
                     lookback_ms: int) -> "_Read":
        if response.status_code in (401, 403):  # credentials, not the protocol: query_range would fail alike
            response.close()
            raise FetchError(SOURCE, query.name, FailureKind.HTTP_STATUS, f"HTTP {response.status_code}")
        if 400 <= response.status_code < 500 or response.status_code == 501:
            text = response.text[:200].strip()
            response.close()
            raise _Unsupported(f"HTTP {response.status_code}: {text}")
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith(remote_read.CONTENT_TYPE):
            response.close()
            raise _Unsupported(f"answered {content_type or 'no content type'!r}, not protobuf")
        body = self._read_body(query, response)
        self.stats.requests += 1
        self.stats.bytes += len(body)
        started = time.perf_counter()
        try:
            try:
                if remote_read.decoded_size(body) > self.read_max_bytes:
                    raise _ReadTooLarge(f"an answer of {remote_read.decoded_size(body)} bytes decoded, more than "
                                        f"{self.read_max_bytes}")
                raw = remote_read.decode_response(body)
            except remote_read.DecodeError as exc:
                raise _Unsupported(str(exc)) from None
            placed: list[promjson.Series] = []
            samples = 0
            for labels, ts_ms, values in raw:
                samples += len(ts_ms)
                at_ms, on_grid = remote_read.on_grid(ts_ms, values, grid_ms, lookback_ms)
                if len(at_ms):  # as query_range, a series with no point in the range is left out
                    placed.append((labels, at_ms / 1000, on_grid))
        finally:
            self.stats.read_decode_s += time.perf_counter() - started
        return _Read(series=placed, samples=samples)

    def _read_body(self, query: QueryConfig, response: requests.Response) -> bytes:
        """A remote-read answer's (compressed) body, read no further than ``read_max_bytes``."""
        parts: list[bytes] = []
        size = 0
        try:
            for piece in response.iter_content(READ_CHUNK_BYTES):
                size += len(piece)
                if size > self.read_max_bytes:
                    raise _ReadTooLarge(f"an answer of more than {self.read_max_bytes} bytes")
                parts.append(piece)
        except requests.RequestException as exc:
            raise http.read_error(exc, SOURCE, query.name, self.config.timeout) from None
        finally:
            response.close()
        return b"".join(parts)

    def _place_read(self, query: QueryConfig, read: "_Read", qf: _QueryFrame, where: dict[str, int],
                    step: float) -> None:
        self._merge(query, read.series, qf, where, float(qf.grid[0]), step)

    def _chunk_points(self, query: QueryConfig, seen: int) -> int:
        """Points per series in the next request: under the server's limit, and small enough that
        one decoded response (about 150 bytes of Python objects per point) stays within
        SAMPLES_PER_REQUEST points. Before the series count is known, a short probe."""
        series = seen or len(self._known.get(query.name, {}))
        if series == 0:
            return min(self.config.max_points_per_request, PROBE_POINTS)
        return max(2, min(self.config.max_points_per_request, SAMPLES_PER_REQUEST // series))

    def _merge_answer(self, query: QueryConfig, answer: _Answer, qf: _QueryFrame, where: dict[str, int],
                      first: float, step: float) -> None:
        self._merge(query, answer.series, qf, where, first, step, skipped=answer.skipped)

    def _merge(self, query: QueryConfig, result: list[promjson.Series], qf: _QueryFrame, where: dict[str, int],
               first: float, step: float, *, skipped: int = 0) -> None:
        non_finite = 0
        truncated = skipped
        cut = 0
        for raw, ts, vals in result:
            name = raw.pop("__name__", None) or query.name
            labels, cut_here = bounded_labels(raw)
            cut += cut_here
            sid = series_id(name, labels)
            col = where.get(sid)
            if col is None:
                if len(where) >= self.series_limit:
                    truncated += 1
                    continue
                col = where[sid] = len(qf.infos)
                qf.infos.append(SeriesInfo(series_id=sid, metric=name, labels=labels, kind=query.kind))
                qf.columns.append(np.full(len(qf.grid), np.nan))
            if not len(ts):
                continue
            bad = ~np.isfinite(vals)
            if bad.any():
                non_finite += int(bad.sum())
                vals[bad] = np.nan
            pos = np.rint((ts - first) / step).astype("int64")
            ok = (pos >= 0) & (pos < len(qf.grid))
            qf.columns[col][pos[ok]] = vals[ok]
            self.stats.points += len(ts)
        if non_finite:
            self.metrics.samples_dropped.labels(reason="non_finite").inc(non_finite)
        if cut:
            self.metrics.label_values_cut.inc(cut)
        if truncated:
            self.metrics.samples_dropped.labels(reason="series_limit").inc(truncated)
        self.health.note(SOURCE, query.name, f"more than {self.series_limit} series; kept the first {self.series_limit}"
                         if truncated else None, "source.truncated", query=query.expr)

    def _query(self, query: QueryConfig, params: dict[str, str], known: frozenset[str]) -> _Answer:
        """One query_range request, read as it arrives; ``known``: the series ids already kept."""
        return self._request(query, self.url, self._decode, known, data=params, stream=True)

    def _request(self, query: QueryConfig, url: str, decode: Callable[..., T], *args: object, **kwargs: object) -> T:
        """POST to ``url`` with retries on connection errors, 429 and 5xx; ``decode(query,
        response, *args)`` reads any other answer."""
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                response = http.send(self.session, "POST", SOURCE, query.name, url, timeout_s=self.config.timeout,
                                     **kwargs)
            except FetchError as exc:
                if exc.kind != FailureKind.CONNECTION or attempt == attempts - 1:
                    raise
                error = exc
            else:
                # 501 Not Implemented is an answer, not a hiccup: a retry would get it again.
                if response.status_code == 429 or (response.status_code >= 500 and response.status_code != 501):
                    error = FetchError(SOURCE, query.name, FailureKind.HTTP_STATUS, f"HTTP {response.status_code}")
                    retry_after = _retry_after(response)
                    response.close()  # a streamed answer holds its connection until closed
                    if attempt == attempts - 1:
                        raise error
                else:
                    return decode(query, response, *args)
            delay = retry_after if retry_after is not None else self.config.backoff * (2 ** attempt) * random.uniform(0.5, 1.5)
            log.debug(kv("prometheus.retry", query=query.name, attempt=attempt + 1, error=error.problem,
                         delay_s=round(delay, 2)))
            time.sleep(min(delay, _MAX_SLEEP_S))
        raise AssertionError("unreachable")

    def _decode(self, query: QueryConfig, response: requests.Response, known: frozenset[str]) -> _Answer:
        """The answer read piece by piece (``promjson.MatrixStream``): a series past
        ``series_limit`` is stepped over unread, so memory holds the series kept, not the answer."""
        self.stats.requests += 1
        stream = promjson.MatrixStream(self._keeper(query, known), max_series_chars=MAX_SERIES_CHARS)
        text = codecs.getincrementaldecoder("utf-8")("replace")
        pieces = response.iter_content(READ_CHUNK_BYTES)
        decoding = 0.0  # the time spent decoding, not waiting for the next piece
        try:
            try:
                for piece in pieces:
                    started = time.perf_counter()
                    self.stats.bytes += len(piece)
                    stream.feed(text.decode(piece))
                    decoding += time.perf_counter() - started
                started = time.perf_counter()
                stream.feed(text.decode(b"", final=True))
                warnings = stream.finish()
                decoding += time.perf_counter() - started
                answer = _Answer(series=stream.series, skipped=stream.skipped)
            except promjson.LayoutError:  # an error, an HTML page, another server's layout: read it whole
                series, warnings = self._decode_slow(query, response, stream.pending + self._rest(query, pieces, text))
                answer = _Answer(series=series)
            except promjson.TooLarge as exc:
                raise FetchError(SOURCE, query.name, FailureKind.TOO_LARGE, str(exc)) from None
            except requests.RequestException as exc:
                raise http.read_error(exc, SOURCE, query.name, self.config.timeout) from None
            except ValueError as exc:
                raise FetchError(SOURCE, query.name, FailureKind.INVALID_JSON,
                                 f"invalid JSON (HTTP {response.status_code}): {exc}") from None
        finally:
            response.close()
            self.stats.json_decode_s += decoding
        self.health.note(SOURCE, query.name, "; ".join(warnings) if warnings else None,
                         "source.warnings", query=query.expr)
        return answer

    def _rest(self, query: QueryConfig, pieces: Iterator[bytes], text: codecs.IncrementalDecoder) -> str:
        """The rest of an answer not in Prometheus' layout, up to MAX_OTHER_BYTES."""
        parts: list[str] = []
        size = 0
        for piece in pieces:
            size += len(piece)
            self.stats.bytes += len(piece)
            if size > MAX_OTHER_BYTES:
                raise FetchError(SOURCE, query.name, FailureKind.TOO_LARGE,
                                 f"an answer of more than {MAX_OTHER_BYTES} bytes not in Prometheus' layout")
            parts.append(text.decode(piece))
        parts.append(text.decode(b"", final=True))
        return "".join(parts)

    def _keeper(self, query: QueryConfig, known: frozenset[str]) -> Callable[[dict[str, str]], bool]:
        """Whether to read a series of an answer: one already kept, or a new one while fewer
        than ``series_limit`` are (``_merge`` applies the limit across answers exactly)."""
        admitted: set[str] = set()

        def keep(raw: dict[str, str]) -> bool:
            labels = {k: v for k, v in raw.items() if k != "__name__"}
            sid = series_id(raw.get("__name__") or query.name, bounded_labels(labels)[0])
            if sid in known or sid in admitted:
                return True
            if len(known) + len(admitted) < self.series_limit:
                admitted.add(sid)
                return True
            return False

        return keep

    def _decode_slow(self, query: QueryConfig, response: requests.Response,
                     text: str) -> tuple[list[promjson.Series], list[str]]:
        try:
            payload = json.loads(text)
        except ValueError:
            if http.looks_like_html(response, text[:200]):
                raise FetchError(SOURCE, query.name, FailureKind.HTML, "an HTML page instead of JSON") from None
            raise FetchError(SOURCE, query.name, FailureKind.INVALID_JSON,
                             f"invalid JSON (HTTP {response.status_code})") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            error = payload.get("error", "no error message") if isinstance(payload, dict) else "not an object"
            raise FetchError(SOURCE, query.name, FailureKind.API_ERROR, f"HTTP {response.status_code}: {error}")
        data = payload.get("data") or {}
        if data.get("resultType") != "matrix":
            raise FetchError(SOURCE, query.name, FailureKind.API_ERROR,
                             f"expected a matrix result, found {data.get('resultType')!r}")
        try:
            series = promjson.decode_matrix_items(data.get("result") or [])
        except (TypeError, ValueError, IndexError) as exc:
            raise FetchError(SOURCE, query.name, FailureKind.INVALID_JSON, f"unexpected matrix layout ({exc})") from None
        return series, [str(w) for w in payload.get("warnings") or []]


def _fmt(epoch_s: float) -> str:
    return f"{epoch_s:.3f}"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
