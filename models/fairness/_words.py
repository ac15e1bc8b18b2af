"""Metrics and numbers in words, shared by the document's sentences and the HTML report."""

from __future__ import annotations

import math

KEY_METRICS = (
    "selection_rate_at_10",
    "precision_at_10",
    "fnr_at_10",
    "fpr_at_10",
    "auc",
    "calibration_gap",
    "ece",
)
"""Headline metrics: the summary names them first and the intersection table shows only them."""

_LABELS = {
    "base_rate": "observed rate",
    "mean_score": "mean score",
    "calibration_gap": "mean score − observed rate",
    "auc": "AUC",
    "brier": "Brier score",
    "ece": "ECE",
    "calibration_slope": "calibration slope",
    "calibration_intercept": "calibration intercept",
    "selection_rate": "share selected",
    "precision": "precision",
    "fpr": "false-positive rate",
    "fnr": "false-negative rate",
    "fdr": "false-discovery rate",
    "for": "false-omission rate",
}


def percent(x: float | None) -> str:
    """A rate as a percentage with one decimal, or 'n/a'."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def points(x: float | None) -> str:
    """A difference of rates in signed percentage points, or 'n/a'."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f} points"


def metric_words(metric: str) -> str:
    """A metric's name in words, e.g. 'share selected in the top 10%'."""
    base, _, capacity = metric.partition("_at_")
    words = _LABELS.get(base, base.replace("_", " "))
    return f"{words} in the top {capacity}% queue" if capacity else words
