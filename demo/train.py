"""The demo's trainer, run by ``playbooks/retrain_model.yml``: trains a candidate fraud model on
recent (synthetic) traffic, scores it and the current version on one holdout, writes the
candidate as a new version directory and the metrics as JSON (see ``agent.rollouts.retrain``).

``--corrupt-labels`` (or ``{"corrupt_labels": true}`` in ``training.json`` in the models dir, as
``python -m demo inject bad-labels`` writes) shuffles the training labels: a candidate that must
fail its gate.

Run: ``python -m demo.train --models-dir DIR --metrics-file FILE [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from demo.service import FEATURES, feature_sample


def current_score(x: np.ndarray) -> np.ndarray:
    """The hand-built versions' score (v1 to v4), as ``demo.service`` computes it."""
    z = 0.01 * x[:, 0] - 0.002 * x[:, 1] + 0.2 * x[:, 2] - 2
    return 1 / (1 + np.exp(-z))


def version_score(models_dir: Path, version: str, x: np.ndarray) -> np.ndarray:
    """What ``version`` scores: a trained version's own coefficients over log features, or the
    hand-built score."""
    try:
        model = json.loads((models_dir / "versions" / version / "model.json").read_text())
    except (OSError, ValueError):
        model = {}
    if "coef" not in model:
        return current_score(x)
    z = np.log1p(x) @ np.array(model["coef"], dtype=float) + float(model["intercept"])
    return 1 / (1 + np.exp(-z))


def traffic(rng: random.Random, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Features as the service draws them, and fraud labels from a ground truth the serving
    model only approximates (new accounts matter more than it thinks)."""
    x = np.array([[feature_sample(rng, f, 0.0) for f in FEATURES] for _ in range(rows)])
    z = 0.012 * x[:, 0] - 0.006 * x[:, 1] + 0.25 * x[:, 2] - 1.5
    p = 1 / (1 + np.exp(-z))
    y = np.array([rng.random() < q for q in p], dtype=int)
    return x, y


def _training_settings(models_dir: Path) -> dict:
    """``training.json`` beside the versions: what ``python -m demo inject bad-labels`` breaks."""
    try:
        return json.loads((models_dir / "training.json").read_text())
    except (OSError, ValueError):
        return {}


def next_version(models_dir: Path) -> str:
    numbers = [int(m.group(1)) for p in (models_dir / "versions").iterdir()
               if (m := re.fullmatch(r"v(\d+)", p.name))]
    return f"v{max(numbers, default=0) + 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--metrics-file", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--corrupt-labels", action="store_true")
    parser.add_argument("--serving-version", default=None,
                        help="The version to score the candidate against (default: what models/current serves).")
    args = parser.parse_args()
    corrupt = args.corrupt_labels or _training_settings(args.models_dir).get("corrupt_labels", False)
    rng = random.Random(args.seed)
    x, y = traffic(rng, args.rows)
    split = int(0.7 * len(y))
    train_y = y[:split].copy()
    if corrupt:
        np.random.default_rng(args.seed).shuffle(train_y)
    features = np.log1p(x)
    model = LogisticRegression(max_iter=500).fit(features[:split], train_y)
    candidate_auc = float(roc_auc_score(y[split:], model.predict_proba(features[split:])[:, 1]))
    current = args.serving_version or (args.models_dir / "current").resolve().name
    current_auc = float(roc_auc_score(y[split:], version_score(args.models_dir, current, x[split:])))
    version = next_version(args.models_dir)
    target = args.models_dir / "versions" / version
    target.mkdir(parents=True)
    (target / "model.json").write_text(json.dumps({
        "version": version, "latency_s": 0.06, "feature_shift": 0.0,
        "coef": [round(float(c), 6) for c in model.coef_[0]], "intercept": round(float(model.intercept_[0]), 6)}))
    args.metrics_file.parent.mkdir(parents=True, exist_ok=True)
    args.metrics_file.write_text(json.dumps({
        "candidate": {"version": version, "metrics": {"auc": round(candidate_auc, 4), "rows": split}},
        "current": {"version": current, "metrics": {"auc": round(current_auc, 4)}}}))
    print(json.dumps({"version": version, "auc": round(candidate_auc, 4), "current_auc": round(current_auc, 4)}))


if __name__ == "__main__":
    main()
