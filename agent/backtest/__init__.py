"""Walk-forward backtests of the detectors over CSV files in NAB's layout, scored like NAB.

``score_corpus`` is the one-call entry for benchmarks; ``runner.backtest`` and
``runner.write_results`` are what ``aiops backtest`` uses.
"""

from __future__ import annotations

from pathlib import Path


def score_corpus(data_dir: str | Path, labels_path: str | Path, detector: str = "forecast") -> dict[str, float]:
    """Backtest ``detector`` over every CSV under ``data_dir`` and return the normalised NAB score
    per profile: keys ``standard``, ``reward_low_FP_rate``, ``reward_low_FN_rate`` (0 = never
    fires, 100 = perfect). Example::

        score_corpus("/work/shared/data/nab/data", "/work/shared/data/nab/labels/combined_windows.json")
    """
    from agent.backtest.runner import backtest

    result = backtest([Path(data_dir)], detector=detector, labels=Path(labels_path))
    return {name: outcome.score for name, outcome in result.profiles.items()}


__all__ = ["score_corpus"]
