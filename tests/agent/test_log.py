"""Log lines: key=value, quoting, and secrets scrubbed."""

from __future__ import annotations

import logging

from agent import log
from agent.log import LogfmtFormatter, RepeatFilter, kv


def test_kv_quotes_values_with_spaces_and_labels():
    line = kv("hit.found", series='up{job="node"}', score=4.25, note="two words", none=None,
              labels={"instance": "a b"})
    assert line == ('event=hit.found series="up{job=\\"node\\"}" score=4.25 note="two words" '
                    'labels="instance=a b"')


def test_registered_secrets_never_reach_a_line():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, kv("http.call", url="https://h/?key=hunter2-secret"), None, None)
    line = LogfmtFormatter(["hunter2-secret", "abc", None]).format(record)
    assert "hunter2-secret" not in line
    assert line.endswith('event=http.call url="https://h/?key=***"')
    assert "hunter2-secret" in LogfmtFormatter().format(record)  # nothing is scrubbed that was not given


def test_the_config_secrets_are_scrubbed_and_stay_scrubbed_after_a_reload(tmp_path, capsys):
    from agent.config import parse_config

    old = parse_config("http:\n  token: old-token-1234\n")
    new = parse_config("http:\n  token: new-token-5678\n")
    assert old.secrets() == ["old-token-1234"]
    root = logging.getLogger()
    level, before = root.level, list(root.handlers)
    try:
        log.setup("info", secrets=old.secrets())
        log.setup("info", secrets=new.secrets())  # a reload
        logging.getLogger("t").warning(kv("t.line", a="old-token-1234", b="new-token-5678"))
        err = capsys.readouterr().err
        assert "event=t.line a=*** b=***" in err and "token-" not in err
        assert sum(getattr(h, "_aiops", False) for h in root.handlers) == 1
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)


def test_passwords_in_urls_never_reach_a_line():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1,
                               kv("source.failed", error="GET https://ops:s3cr3t@prom.example:9090/api failed"),
                               None, None)
    line = LogfmtFormatter().format(record)
    assert "s3cr3t" not in line and "https://ops:***@prom.example:9090/api" in line
    assert log.scrub_url_credentials("http://a:@h http://h:9090 https://u:p@x") == "http://a:***@h http://h:9090 https://u:***@x"


def test_control_characters_from_untrusted_values_are_escaped():
    line = kv("source.down", error="bad \x00\x07\x1b[2J\r\x9b end", labels={"job": "a\x00b"})
    assert line == 'event=source.down error="bad \\\\x00\\\\x07\\\\x1b[2J\\\\x0d\\\\x9b end" labels="job=a\\\\x00b"'
    assert not any(c in line for c in "\x00\x07\x1b\r\x9b")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_a_flood_of_like_errors_from_asyncio_is_one_line_per_window():
    clock = Clock()
    repeat = RepeatFilter(window_s=10.0, monotonic=clock)
    accept = "socket.accept() out of system resource\nsocket: <asyncio.TransportSocket fd=%d>"
    passed = []
    for i in range(5120):
        clock.now += 1 / 256  # 5,120 errors in 20 s (a step binary floats add exactly)
        r = record("asyncio", accept % (9 + i % 2))
        if repeat.filter(r):
            passed.append(r.getMessage())
    assert passed == [accept % 9, accept % 9 + " (suppressed=2559 like it in the last 10s)"]
    # Other loggers and other messages are never held back.
    assert repeat.filter(record("agent.pipeline", "event=cycle.done"))
    assert repeat.filter(record("asyncio", "Task was destroyed but it is pending!"))
