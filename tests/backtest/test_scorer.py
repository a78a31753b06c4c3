"""The NAB scorer on small hand-computed cases.

Every file here has 20 rows at 5-minute steps: probation = floor(0.15 * 20) = 3 rows, and the
window (when there is one) runs from row 10 to row 14: width 5, right edge at row 14. So:

- row 10 (left edge): y = -1, reward s(-1)/s(-1) = 1
- row 12: y = -(14 - 12 + 1)/5 = -0.6, reward s(-0.6)/s(-1) = 0.9174286804284079
- row 14 (right edge): y = -0.2, reward s(-0.2)/s(-1) = 0.46838684390227814
- row 15 (just after): y = |14 - 15|/(5 - 1) = 0.25, s(0.25) = -0.5545997223493824
- any row before the window: s = -1 (no preceding window)

with s(y) = 2/(1 + exp(5 y)) - 1, s(-1) = 0.9866142981514305.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.backtest.scorer import (
    NEVER,
    PROBATION,
    PROFILES,
    WindowError,
    evaluate,
    label_rows,
    optimise,
    probation_rows,
    scaled_sigmoid,
)

STANDARD, LOW_FP, LOW_FN = PROFILES
TS = pd.date_range("2024-01-01", periods=20, freq="5min")
WINDOW = [(TS[10], TS[14])]


def detections(*rows: int, n: int = 20) -> np.ndarray:
    scores = np.zeros(n)
    scores[list(rows)] = 1.0
    return scores


def run(*rows: int, windows=WINDOW):
    return (label_rows(TS, windows), detections(*rows))


def test_probation_is_fifteen_percent_capped_at_750_rows():
    assert [probation_rows(n) for n in (20, 1243, 4032, 5000, 22695)] == [3, 186, 604, 750, 750]


def test_scaled_sigmoid_values():
    assert scaled_sigmoid(np.array([-1.0, 0.0, 0.25, 3.0, 3.01])).tolist() == pytest.approx(
        [0.9866142981514305, 0.0, -0.5545997223493824, -0.999999388195546, -1.0])


def test_rows_are_labelled_like_nabs_sweeper():
    labels = label_rows(TS, WINDOW)
    assert labels.window.tolist() == [PROBATION] * 3 + [-1] * 7 + [0] * 5 + [-1] * 5
    assert labels.tp[10] == pytest.approx(1.0)
    assert labels.tp[14] == pytest.approx(0.46838684390227814)
    assert labels.fp[15] == pytest.approx(-0.5545997223493824)
    assert labels.fp[5] == -1.0
    assert labels.inside.sum() == 5 and labels.windows == 1


def test_detection_at_the_start_of_the_window_scores_perfect():
    outcome = evaluate([run(10, 11, 12)], STANDARD, 0.5)
    assert (outcome.raw, outcome.score, outcome.detected, outcome.false_positives) == (1.0, 100.0, 1, 0)


def test_detection_late_in_the_window_earns_less():
    outcome = evaluate([run(14)], STANDARD, 0.5)
    assert outcome.raw == pytest.approx(0.46838684390227814)
    assert outcome.score == pytest.approx(73.4193421951139)
    assert evaluate([run(14)], LOW_FN, 0.5).score == pytest.approx(82.27956146340927)


def test_only_the_earliest_detection_in_a_window_counts():
    assert evaluate([run(12, 14)], STANDARD, 0.5).raw == pytest.approx(0.9174286804284079)


def test_detection_just_after_the_window_is_a_cheap_false_positive():
    outcome = evaluate([run(15)], STANDARD, 0.5)
    assert outcome.raw == pytest.approx(-1.0 - 0.11 * 0.5545997223493824)
    assert outcome.score == pytest.approx(-3.0502984729215976)
    assert evaluate([run(15)], LOW_FP, 0.5).raw == pytest.approx(-1.0 - 0.22 * 0.5545997223493824)
    assert (outcome.detected, outcome.false_positives) == (0, 1)


def test_no_detection_scores_zero_and_probation_rows_are_not_scored():
    for rows in ((), (0, 1, 2)):
        outcome = evaluate([run(*rows)], STANDARD, 0.5)
        assert (outcome.raw, outcome.score, outcome.false_positives) == (-1.0, 0.0, 0)
    assert evaluate([run()], LOW_FN, 0.5).raw == -2.0


def test_false_positives_before_any_window_cost_the_full_weight_each():
    outcome = evaluate([run(5, 6, 10)], STANDARD, 0.5)
    assert outcome.raw == pytest.approx(1.0 - 0.22)
    assert outcome.false_positives == 2
    assert outcome.precision == pytest.approx(1 / 3) and outcome.recall == 1.0


def test_scores_add_up_over_files_and_normalise_on_the_corpus_windows():
    quiet_file = (label_rows(TS, []), detections(7, 8))
    outcome = evaluate([run(10, 5), quiet_file, run()], STANDARD, 0.5)
    # file 1: +1 - 0.11; file 2: 2 x -0.11; file 3: missed window -1; 2 windows in all
    assert outcome.raw == pytest.approx(1.0 - 0.33 - 1.0)
    assert (outcome.null, outcome.perfect, outcome.windows) == (-2.0, 2.0, 2)
    assert outcome.score == pytest.approx(100 * (-0.33 + 2.0) / 4.0)


def test_threshold_is_swept_over_the_distinct_scores():
    labels = label_rows(TS, WINDOW)
    scores = np.zeros(20)
    scores[5], scores[12], scores[14] = 0.95, 0.9, 0.97
    outcome = optimise([(labels, scores)], STANDARD)
    # at 0.97: late hit 0.468; at 0.95: 0.468 - 0.11; at 0.9: 0.917 - 0.11 (best); at 0: FPs everywhere
    assert outcome.threshold == 0.9
    assert outcome.raw == pytest.approx(0.9174286804284079 - 0.11)


def test_a_detector_that_only_hurts_keeps_the_null_threshold():
    # at 1.0: -1 - 3 x 0.11; at 0.0 every row fires: 17 + 12 false positives outweigh the catch
    outcome = optimise([(label_rows(TS, []), detections(5, 6, 7)), run()], STANDARD)
    assert (outcome.threshold, outcome.raw, outcome.score) == (NEVER, -1.0, 0.0)


def test_sweep_matches_scoring_every_threshold_one_by_one():
    rng = np.random.default_rng(7)
    ts = pd.date_range("2024-01-01", periods=200, freq="5min")
    windows = [(ts[60], ts[79]), (ts[120], ts[139])]
    runs = [(label_rows(ts, windows), np.round(rng.random(200), 2)) for _ in range(3)]
    for profile in PROFILES:
        swept = optimise(runs, profile)
        candidates = np.unique(np.concatenate([s for _, s in runs]))
        brute = max(evaluate(runs, profile, t).raw for t in [NEVER, *candidates])
        assert swept.raw == pytest.approx(brute)


def test_window_edges_match_the_first_row_with_that_timestamp():
    # a daylight-saving style repeat: rows 8..11 all carry the same timestamp
    ts = pd.DatetimeIndex(list(TS[:8]) + [TS[8]] * 4 + list(TS[12:]))
    labels = label_rows(ts, [(TS[8], TS[14])])
    assert labels.window[8:15].tolist() == [0] * 7
    assert labels.tp[8] == pytest.approx(1.0)


def test_a_window_edge_missing_from_the_file_is_an_error():
    with pytest.raises(WindowError, match="window edge 2030-01-01 00:00:00 is not a timestamp of the file"):
        label_rows(TS, [(TS[10], pd.Timestamp("2030-01-01"))])
