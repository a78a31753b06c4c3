"""Log lines: key=value, quoting, and secrets scrubbed."""

from __future__ import annotations

import logging

from agent import log
from agent.log import LogfmtFormatter, kv


def test_kv_quotes_values_with_spaces_and_labels():
    line = kv("hit.found", series='up{job="node"}', score=4.25, note="two words", none=None,
              labels={"instance": "a b"})
    assert line == ('event=hit.found series="up{job=\\"node\\"}" score=4.25 note="two words" '
                    'labels="instance=a b"')


def test_registered_secrets_never_reach_a_line():
    log.redact("hunter2-secret")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, kv("http.call", url="https://h/?key=hunter2-secret"), None, None)
    line = LogfmtFormatter().format(record)
    assert "hunter2-secret" not in line
    assert 'url="https://h/?key=***"' in line or "url=https://h/?key=***" in line
