"""The MTTR report as a text table, CSV, JSON or an HTML page."""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict
from typing import Any

import jinja2

from agent import csvcells
from agent.clock import duration
from agent.report.mttr import DURATIONS, Comparison, GroupFigures, MttrReport, Stat

FORMATS = ("table", "csv", "json", "html")

_env = jinja2.Environment(loader=jinja2.PackageLoader("agent.report", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def environment() -> jinja2.Environment:
    """The templates' Jinja2 environment (autoescape on: label values are untrusted)."""
    return _env


def percent(share: float | None) -> str:
    return "-" if share is None or math.isnan(share) else f"{share * 100:.0f}%"


_env.filters["duration"] = duration
_env.filters["percent"] = percent


def rows_of(report: MttrReport) -> list[tuple[str, GroupFigures]]:
    """(section, figures): the groups, then all incidents, then the model incidents."""
    return [*(("group", g) for g in report.groups), ("total", report.total), ("model", report.model)]


def as_dict(report: MttrReport) -> dict[str, Any]:
    return {
        "period": {"since": report.period.since.isoformat(), "until": report.period.until.isoformat()},
        "generated_at": report.generated_at.isoformat(),
        "by": report.by,
        "groups": [asdict(g) for g in report.groups],
        "total": asdict(report.total),
        "model": asdict(report.model),
        "comparison": [_comparison(c) for c in report.comparison],
        "comparison_total": _comparison(report.comparison_total),
    }


def _comparison(c: Comparison) -> dict[str, Any]:
    return {"kind": c.kind, "auto": asdict(c.auto), "manual": asdict(c.manual), "speedup": c.speedup}


def as_json(report: MttrReport) -> str:
    return json.dumps(as_dict(report), indent=2)


_CSV_HEADER = ["section", "group", "incidents", "episodes", "resolved", "unresolved", "acknowledged", "auto_remediated",
               "auto_share", *(f"{d}_{f}" for d in DURATIONS for f in ("n", "mean_s", "median_s", "p90_s"))]


def _stat_cells(stat: Stat) -> list[Any]:
    return [stat.n, _cell(stat.mean_s), _cell(stat.median_s), _cell(stat.p90_s)]


def _cell(value: float | None) -> Any:
    return "" if value is None else round(value, 3)


def as_csv(report: MttrReport) -> str:
    """One line per group, then ``total`` and ``model``, then the comparison (MTTR columns only)."""
    out = io.StringIO()
    writer = csvcells.Writer(out)
    writer.writerow(_CSV_HEADER)
    for section, g in rows_of(report):
        writer.writerow([section, g.group, g.incidents, g.episodes, g.resolved, g.unresolved, g.acknowledged, g.auto_remediated,
                         _cell(g.auto_share), *_stat_cells(g.mttd), *_stat_cells(g.mtta), *_stat_cells(g.mttr)])
    for c in (*report.comparison, report.comparison_total):
        for how, stat in (("auto", c.auto), ("manual", c.manual)):
            writer.writerow([f"compare_{how}", c.kind, "", stat.n, stat.n, 0, "", "", "", *[""] * 8,
                             *_stat_cells(stat)])
    return out.getvalue()


def as_table(report: MttrReport) -> str:
    header = ["group", "incidents", "episodes", "unresolved", "auto", "MTTD mean", "MTTD p90", "MTTA mean", "MTTA p90",
              "MTTR mean", "MTTR median", "MTTR p90"]
    lines = [[g.group, str(g.incidents), str(g.episodes), str(g.unresolved), percent(g.auto_share), duration(g.mttd.mean_s),
              duration(g.mttd.p90_s), duration(g.mtta.mean_s), duration(g.mtta.p90_s), duration(g.mttr.mean_s),
              duration(g.mttr.median_s), duration(g.mttr.p90_s)] for _, g in rows_of(report)]
    text = [f"MTTR report {report.period.describe()}" + (f", by {report.by}" if report.by else ""), ""]
    text += _columns([header, *lines])
    text.append("")
    unresolved = report.total.unresolved
    text.append(f"{report.total.episodes} episodes (outages) of {report.total.incidents} incidents, {unresolved} "
                "unresolved (counted, but left out of MTTR). MTTD, MTTA and MTTR count episodes: an incident "
                "that reopened counts each outage. auto = share of resolved episodes fixed by a verified remediation.")
    text.append("")
    if report.comparison:
        text.append("MTTR with a verified remediation vs without (same kind of incident):")
        rows = [["kind", "auto n", "auto mean", "by hand n", "by hand mean", "speedup"]]
        for c in (*report.comparison, report.comparison_total):
            rows.append([c.kind, str(c.auto.n), duration(c.auto.mean_s), str(c.manual.n), duration(c.manual.mean_s),
                         "-" if c.speedup is None else f"{c.speedup:.1f}x"])
        text += _columns(rows)
    else:
        text.append("No kind of incident was resolved both by a verified remediation and by hand in this period.")
    return "\n".join(text) + "\n"


def _printable(text: str) -> str:
    """Label values are untrusted: no escape sequences or line breaks reach the terminal."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _columns(rows: list[list[str]]) -> list[str]:
    rows = [[_printable(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def as_html(report: MttrReport) -> str:
    return _env.get_template("mttr.html").render(report=report, rows=rows_of(report))


def render(report: MttrReport, fmt: str) -> str:
    return {"table": as_table, "csv": as_csv, "json": as_json, "html": as_html}[fmt](report)
