"""Fixtures for the incidents tests: hits built by hand, a correlator over a real store, and the
agent's HTTP app served by uvicorn on a free loopback port (the daemon's own server class)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import Context
from agent.flow.samples import series_id
from agent.incidents.correlator import Correlator
from detectors.base import Direction, Hit

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
TOKEN = "s3cret-token-for-tests"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def hit(metric: str, minutes: float = 0.0, *, detector: str = "seasonal", score: float = 5.0,
        value: float = 10.0, expected: float = 1.0, direction: Direction = Direction.UP, **labels: str) -> Hit:
    return Hit(series_id=series_id(metric, labels), detector=detector, ts=at(minutes), value=value, score=score,
               direction=direction, expected=expected, metric=metric, labels=labels,
               explanation=f"{metric} far above normal")


@pytest.fixture
def correlator_for(make_config: Callable[[str], AgentConfig], store: Any) -> Callable[[str], Correlator]:
    """``correlator_for(yaml_of_the_incidents_section)`` → a Correlator over the test store."""

    def make(incidents_yaml: str = "") -> Correlator:
        config = make_config(incidents_yaml)
        return Correlator(store, config.incidents, interval_s=config.agent.interval)

    return make


class Api:
    """The app on a loopback port, plus a requests session and the context behind it."""

    def __init__(self, ctx: Context, server: Any) -> None:
        import requests

        self.ctx = ctx
        self.server = server
        self.base = f"http://127.0.0.1:{server.port}"
        self.http = requests.Session()

    def post(self, path: str, *, token: str | None = TOKEN, headers: dict[str, str] | None = None,
             **kwargs: Any) -> Any:
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.post(self.base + path, headers=headers, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(self.base + path, timeout=10, **kwargs)


@pytest.fixture
def api_for(make_config: Callable[[str], AgentConfig], tmp_path: Any) -> Iterator[Callable[..., Api]]:
    from agent.daemon import HttpServer

    started: list[Api] = []

    def start(extra_yaml: str = "", *, token: str | None = TOKEN) -> Api:
        from tests.conftest import free_port

        http = f"http:\n  listen: 127.0.0.1\n  port: {free_port()}\n" + (f"  token: {token}\n" if token else "")
        config = make_config(http + extra_yaml)
        ctx = Context.create(config, tmp_path / "state")
        server = HttpServer(ctx, None)
        server.start()
        assert server.server.started, "uvicorn did not start"
        api = Api(ctx, server)
        started.append(api)
        return api

    yield start
    for api in started:
        api.server.stop()
        api.ctx.store.close()
