"""Helpers for source tests: a Context from YAML text with its collect stage, and cycle times."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from agent.config import AgentConfig
from agent.context import Context
from agent.flow.samples import Samples
from agent.sources import Collector
from tests.fixtures.prometheus import MisbehavingServer

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)

APP_TEXT = """\
# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{path="/"} %(requests)s
# HELP app_temperature_celsius A gauge.
# TYPE app_temperature_celsius gauge
app_temperature_celsius 21.5
# HELP app_latency_seconds Latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="0.1"} %(b1)s
app_latency_seconds_bucket{le="0.5"} %(b2)s
app_latency_seconds_bucket{le="+Inf"} %(b3)s
app_latency_seconds_count %(b3)s
app_latency_seconds_sum 8
"""


def app_text(requests: float, b1: float, b2: float, b3: float) -> str:
    return APP_TEXT % {"requests": requests, "b1": b1, "b2": b2, "b3": b3}


GOOD = "# TYPE good_temperature_celsius gauge\ngood_temperature_celsius 20\n"


@pytest.fixture
def good_server() -> Iterator[MisbehavingServer]:
    """A well-behaved exporter beside the one a test makes misbehave."""
    server = MisbehavingServer()
    server.respond(GOOD)
    yield server
    server.close()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# The collect stage of each Context a test made (by id), as a pipeline holds one; emptied after each test.
_COLLECTORS: dict[int, Collector] = {}


def collect(ctx: Context, when: datetime) -> Samples:
    return _COLLECTORS[id(ctx)].collect(when)


def history(ctx: Context, start: datetime, end: datetime, **kwargs: object) -> Samples:
    return _COLLECTORS[id(ctx)].history(start, end, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def make_ctx(make_config: Callable[[str], AgentConfig], tmp_path) -> Iterator[Callable[..., Context]]:
    """``make_ctx(yaml_text)``: a Context over a real store in tmp_path, with its collect stage
    (``collect``, ``history``); both closed at the end."""
    made: list[Context] = []

    def make(text: str, state: str = "state") -> Context:
        config = make_config(text)
        ctx = Context.create(config, tmp_path / state)
        made.append(ctx)
        _COLLECTORS[id(ctx)] = Collector(ctx)
        return ctx

    yield make
    for ctx in made:
        _COLLECTORS.pop(id(ctx)).close()
        ctx.store.close()


def scrape_yaml(url: str, **scrape: object) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in scrape.items())
    return ("http:\n  enabled: false\n"
            "sources:\n  scrape:\n    self_metrics: false\n    timeout: 1s\n"
            f"{extra}    targets:\n      - name: app\n        url: {url}/metrics\n")
