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


def test_passwords_in_urls_never_reach_a_line():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1,
                               kv("source.failed", error="GET https://ops:s3cr3t@prom.example:9090/api failed"),
                               None, None)
    line = LogfmtFormatter().format(record)
    assert "s3cr3t" not in line and "https://ops:***@prom.example:9090/api" in line
    assert log.scrub_url_credentials("http://a:@h http://h:9090 https://u:p@x") == "http://a:***@h http://h:9090 https://u:***@x"
