"""Replays of CSV files through the daemon's own cycle, scored like NAB.

``score_corpus`` is the one-call entry for benchmarks; ``runner.backtest`` and
``runner.write_results`` are what ``aiops backtest`` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import AgentConfig


def score_corpus(data_dir: str | Path, labels_path: str | Path, config: "AgentConfig | None" = None) -> dict[str, float]:
    """Replay every CSV under ``data_dir`` through the pipeline with ``config`` (default: the
    built-in defaults) and return the normalised NAB score per profile, threshold swept:
    keys ``standard``, ``reward_low_FP_rate``, ``reward_low_FN_rate`` (0 = never fires,
    100 = perfect). Example::

        score_corpus("/work/shared/data/nab/data", "/work/shared/data/nab/labels/combined_windows.json")
    """
    from agent.backtest.runner import backtest
    from agent.config import AgentConfig

    result = backtest([Path(data_dir)], config or AgentConfig(), labels=Path(labels_path))
    return {name: outcome.score for name, outcome in result.swept.items()}


__all__ = ["score_corpus"]
