"""The weekly HTML review: what it contains, that it is self-contained, and what a person sees."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from agent.report.period import Period
from agent.report.weekly import weekly_report
from tests.report.builders import DAY, add_incident, known_incidents

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
NOW = datetime(2026, 3, 10, tzinfo=timezone.utc)
PERIOD = Period(since=datetime(2026, 2, 24, tzinfo=timezone.utc), until=NOW)


def _model_history(store) -> None:
    """Model churn: two drift hits (50 % and 30 % of features drifted, as the drift detector records
    them) and a 0.95-quantile latency series at 0.2, 0.3, 0.4 s (mean P95 300 ms); the 0.5-quantile
    and bucket series of the same histogram must not count."""
    conn = store.conn
    for share, day in ((0.5, 3), (0.3, 4)):
        conn.execute("INSERT INTO hits (ts, series_id, detector, entity, metric, labels, value, score, direction, "
                     "recorded_at) VALUES (?, 'model_drift{model=churn}', 'drift', 'churn', 'model_drift', ?, ?, ?, "
                     "'up', ?)", (T0 + day * DAY, json.dumps({"model": "churn"}), share, share, T0 + day * DAY))
    histogram = [("lat95", "model_inference_latency_seconds", "quantile", {"quantile": "0.95"}, [0.2, 0.3, 0.4]),
                 ("lat50", "model_inference_latency_seconds", "quantile", {"quantile": "0.5"}, [0.1, 0.1, 0.1]),
                 ("latb", "model_inference_latency_seconds_bucket", "bucket", {"le": "+Inf"}, [90.0, 95.0, 99.0])]
    for sid, metric, kind, labels, values in histogram:
        conn.execute("INSERT INTO series VALUES (?, ?, ?, ?, ?, ?)",
                     (sid, metric, json.dumps({"model": "churn", **labels}), kind, T0, T0 + 6 * DAY))
        store.record_samples([], [(sid, T0 + i * 60, v) for i, v in enumerate(values)], now=T0 + 6 * DAY)


@pytest.fixture
def weekly(store):
    known_incidents(store, T0)
    add_incident(store, started=T0 + DAY, detected=T0 + DAY + 5, severity="critical",
                 labels={"service": "<script>alert('x')</script>"}, title="<b>bold</b> & broken",
                 signals=[{"metric": "node_cpu_usage", "series_id": "node_cpu_usage{host=a}"}])
    _model_history(store)
    return weekly_report(store, PERIOD, now=NOW)


def _table_rows(html: str, heading: str) -> list[list[str]]:
    section = html.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section, flags=re.S)
    return [re.findall(r"<td>(.*?)</td>", r, flags=re.S) for r in rows if "<td>" in r]


def test_sections_and_figures(weekly):
    assert _table_rows(weekly, "MTTR per week") == [
        ["2026-02-23", "0", "0", "-", "-", "-"],
        ["2026-03-02", "7", "3", "53m 45s", "40m 00s", "1h 42m"],
        ["2026-03-09", "0", "0", "-", "-", "-"]]
    services = _table_rows(weekly, "Incidents by service and severity")
    assert ["api", "2", "0", "1", "3"] in services and ["db", "0", "2", "0", "2"] in services
    noisy = _table_rows(weekly, "Noisiest series and detectors")
    # node_cpu_usage{host=a}: A, B and the extra incident, all critical: 3 pages over 14 days.
    assert noisy[0] == ["node_cpu_usage{host=a}", "stl", "3", "3", "0.21", "3"]
    assert _table_rows(weekly, "Remediation success per playbook") == [
        ["restart-api.yml", "apply", "1", "1", "0", "100%"], ["retrain-churn.yml", "apply", "1", "0", "1", "0%"]]
    # Oldest first: the extra incident (#7) started on day 1, D (#4) on day 3, F (#6) on day 5.
    assert [row[:3] + row[5:] for row in _table_rows(weekly, "Open incidents")] == [
        ["#7", "critical", "open", "7d 00h"], ["#4", "warning", "acknowledged", "5d 00h"], ["#6", "info", "open", "3d 00h"]]
    assert _table_rows(weekly, "Model health") == [["churn", "2", "50%", "40%", "300.0 ms"]]


def test_self_contained_and_escaped(weekly):
    assert weekly.count('src="data:image/png;base64,') == 2
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", weekly)
    assert "<script>" not in weekly and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in weekly
    # the title every view gives the incident (not the one stored when it opened), escaped
    assert "<td>node_cpu_usage anomalous on service=&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>" in weekly
    assert "bold</b>" not in weekly and "bold&lt;" not in weekly


def test_empty_store_still_renders(store):
    html = weekly_report(store, PERIOD, now=NOW)
    assert "No incidents in this period." in html and "No open incidents." in html
    assert "No remediation runs in this period." in html and "No model drift or latency data in this period." in html
    assert "data:image/png" not in html


@pytest.mark.slow
def test_what_a_person_sees_in_chromium(weekly, tmp_path, screenshot, ocr):
    page = tmp_path / "weekly.html"
    page.write_text(weekly)
    text = ocr(screenshot(page, width=1400, height=2600))
    flat = text.replace(" ", "")  # OCR sometimes drops the space inside "53m 45s"
    for words in ("weekly review", "mttr per week", "incidents by service and severity",
                  "noisiest series and detectors", "remediation success per playbook", "open incidents",
                  "model health", "model incidents", "7 incidents, 3 unresolved"):
        assert words in text, f"{words!r} not on the page: {text}"
    for figure in ("53m45s", "40m00s", "1h42m", "4.0x", "restart-api", "node_cpu_usage{host=a}", "25%"):
        assert figure in flat, f"{figure!r} not on the page: {text}"
    # The label value is shown as text, not run as a script.
    assert "alert('x')" in text


def test_many_open_incidents_list_the_most_severe_and_oldest(store):
    for n in range(54):
        add_incident(store, started=T0 + n * 600, detected=T0 + n * 600 + 5, severity="info")
    newest_critical = add_incident(store, started=T0 + DAY * 6, detected=T0 + DAY * 6 + 5, severity="critical")
    html = weekly_report(store, PERIOD, now=NOW)
    assert "<p class=\"note\">55 open; the 50 most severe and oldest are listed.</p>" in html
    rows = _table_rows(html, "Open incidents")
    assert len(rows) == 50
    assert rows[0][:2] == [f"#{newest_critical}", "critical"] and rows[1][0] == "#1"
