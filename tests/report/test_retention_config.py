"""The `retention` config section: defaults keep incidents, runs and audit; errors name the key."""

from __future__ import annotations

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError
from tests.conftest import REPO


def test_defaults_prune_raw_history_and_keep_the_record():
    retention = parse_config("").retention
    assert (retention.samples, retention.hits) == (14 * 86400.0, 30 * 86400.0)
    assert (retention.incidents, retention.runs, retention.audit) == (None, None, None)
    assert (retention.interval, retention.batch_size, retention.budget) == (3600.0, 2000, 5.0)


def test_example_config_documents_the_defaults():
    assert load_config(REPO / "config" / "agent.example.yaml").retention == parse_config("").retention


def test_periods_parse_and_null_keeps_forever():
    retention = parse_config("retention:\n  samples: null\n  audit: 2w\n  incidents: 365d\n").retention
    assert (retention.samples, retention.audit, retention.incidents) == (None, 14 * 86400.0, 365 * 86400.0)


@pytest.mark.parametrize(("text", "message"), [
    ("retention:\n  samples: 0\n", "agent.yaml: retention.samples: expected a number > 0, found 0"),
    ("retention:\n  hits: soon\n",
     "agent.yaml: retention.hits: expected a duration such as 30s, 5m, 2h or 7d, found 'soon'"),
    ("retention:\n  batch_size: 0\n", "agent.yaml: retention.batch_size: expected a number >= 1, found 0"),
    ("retention:\n  keep: 3d\n",
     "agent.yaml: retention.keep: unknown key; expected one of: audit, batch_size, budget, hits, incidents, "
     "interval, runs, samples"),
])
def test_errors_name_the_key(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, name="agent.yaml")
    assert str(caught.value) == message
