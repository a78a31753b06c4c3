"""Plots for the weekly report, rendered off-screen to PNG and embedded as data URIs."""

from __future__ import annotations

import base64
import io

import pandas as pd
from matplotlib.figure import Figure


def data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _unit(max_s: float) -> tuple[float, str]:
    if max_s >= 2 * 3600:
        return 3600.0, "hours"
    if max_s >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def mttr_per_week(weeks: pd.DataFrame) -> str:
    """``weeks``: index week label; columns mttr_mean_s, mttr_median_s, incidents, unresolved."""
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots()
    scale, unit = _unit(float(weeks[["mttr_mean_s", "mttr_median_s"]].max().max() or 0.0))
    x = range(len(weeks))
    ax.bar([i - 0.2 for i in x], weeks["mttr_mean_s"].fillna(0) / scale, width=0.4, label="MTTR mean", color="#3b6fb6")
    ax.bar([i + 0.2 for i in x], weeks["mttr_median_s"].fillna(0) / scale, width=0.4, label="MTTR median",
           color="#9bbbe6")
    every = max(1, -(-len(weeks) // 8))  # at most 8 labels, however long the period
    ticks = list(x)[::every]
    labels = [f"{w}\n{int(n)} ep." for w, n in zip(weeks.index[::every], weeks["episodes"].iloc[::every])]
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title("MTTR per week (week starting)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return data_uri(fig)


def incidents_by_service(table: pd.DataFrame) -> str:
    """``table``: rows services, columns severities, cells counts; stacked bars."""
    fig = Figure(figsize=(9, 0.5 + 0.35 * max(len(table), 3)))
    ax = fig.subplots()
    colours = {"critical": "#c0392b", "warning": "#e67e22", "info": "#7f8c8d"}
    left = pd.Series(0, index=table.index, dtype=float)
    for severity in table.columns:
        ax.barh(table.index, table[severity], left=left, label=str(severity), color=colours.get(str(severity)))
        left = left + table[severity]
    ax.invert_yaxis()
    ax.set_xlabel("incidents")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Incidents by service and severity")
    ax.legend(loc="lower right", fontsize=8)
    return data_uri(fig)
