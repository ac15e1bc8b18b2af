"""Fairness metrics: equal to fairlearn's by group and intersection; ranking and humans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_negative_rate,
    false_positive_rate,
    mean_prediction,
    selection_rate,
    true_positive_rate,
)
from fairness_worlds import INTERSECTIONS, _world
from sklearn.metrics import brier_score_loss, precision_score, roc_auc_score

from models.fairness import DISPARITY, INSUFFICIENT, WITHIN, AuditConfig, audit


def _ours(result, grouping: str, metric: str) -> pd.Series:
    table = result.metrics
    rows = table[(table["grouping"] == grouping) & (table["metric"] == metric)]
    rows = rows[rows["label"] == "observed"]
    return rows.set_index("group")["estimate"]


@pytest.mark.parametrize("names", [("ethnicity",), ("sex",), *INTERSECTIONS])
def test_metrics_equal_fairlearn_by_group_and_intersection(small_audit, names) -> None:
    y, p, attributes, result = small_audit
    grouping = " × ".join(names)
    sensitive = attributes[list(names)]
    for capacity in (5, 10, 20, 30, 50):
        flagged = (p >= result.thresholds[capacity]).astype(int)
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "fpr": false_positive_rate,
                "fnr": false_negative_rate,
                "tpr": true_positive_rate,
                "precision": lambda t, f: precision_score(t, f, zero_division=np.nan),
                "count": count,
            },
            y_true=y,
            y_pred=flagged,
            sensitive_features=sensitive,
        ).by_group
        frame.index = [
            " × ".join(map(str, i if isinstance(i, tuple) else (i,))) for i in frame.index
        ]
        for metric in ("selection_rate", "fpr", "fnr", "precision"):
            ours = _ours(result, grouping, f"{metric}_at_{capacity}")
            np.testing.assert_allclose(ours, frame.loc[ours.index, metric], rtol=0, atol=1e-9)
        fnr = _ours(result, grouping, f"fnr_at_{capacity}")
        np.testing.assert_allclose(1 - fnr, frame.loc[fnr.index, "tpr"], rtol=0, atol=1e-9)
    scores = MetricFrame(
        metrics={
            "mean_score": mean_prediction,
            "auc": roc_auc_score,
            "brier": brier_score_loss,
        },
        y_true=y,
        y_pred=p,
        sensitive_features=sensitive,
    ).by_group
    base = MetricFrame(
        metrics=mean_prediction, y_true=y, y_pred=y, sensitive_features=sensitive
    ).by_group
    scores.index = [" × ".join(map(str, i if isinstance(i, tuple) else (i,))) for i in scores.index]
    base.index = scores.index
    for metric in ("mean_score", "auc", "brier"):
        ours = _ours(result, grouping, metric)
        np.testing.assert_allclose(ours, scores.loc[ours.index, metric], rtol=0, atol=1e-9)
    ours = _ours(result, grouping, "base_rate")
    np.testing.assert_allclose(ours, base.loc[ours.index], rtol=0, atol=1e-9)
    shown = result.groups[(result.groups["grouping"] == grouping) & ~result.groups["suppressed"]]
    assert set(shown["group"]) == set(ours.index)


def test_truth_label_ranking_and_human_decisions() -> None:
    y, p, attributes = _world(4000)
    truth = np.maximum(y, (np.random.default_rng(5).random(y.size) < 0.1)).astype(float)
    decisions = pd.DataFrame(
        {
            "decision": np.where(p > 0.3, "assessment", "no_further_action"),
            "band": np.where(p > 0.4, "Elevated", "Standard"),
            "investigated": p > 0.5,
        }
    )
    config = AuditConfig(attributes=("ethnicity",), intersections=(), n_boot=50)
    result = audit(y, p, attributes, truth=truth, decisions=decisions, config=config)
    assert result.labels == ("observed", "truth")
    truth_rate = result.metrics.query("label == 'truth' and metric == 'base_rate'")
    observed_rate = result.metrics.query("label == 'observed' and metric == 'base_rate'")
    assert (truth_rate["estimate"].to_numpy() >= observed_rate["estimate"].to_numpy()).all()
    ranking = result.ranking[result.ranking["grouping"] == "ethnicity"]
    assert ranking["share_of_top_10"].sum() == pytest.approx(1.0)
    assert ranking["exposure_share"].sum() == pytest.approx(1.0)
    assert ranking.set_index("group").loc["black", "exposure_ratio"] > 1
    human = result.human[result.human["grouping"] == "ethnicity"].set_index(["group", "metric"])[
        "estimate"
    ]
    codes = attributes["ethnicity"] == "white"
    escalated, high = p[codes] > 0.3, p[codes] > 0.4
    assert human[("white", "escalated_rate")] == pytest.approx(escalated.mean())
    assert human[("white", "agreement_with_band")] == pytest.approx((escalated == high).mean())
    assert human[("white", "investigated_rate")] == pytest.approx((p[codes] > 0.5).mean())
    harm = truth[codes].astype(bool)
    assert human[("white", "harm_missed_rate")] == pytest.approx(harm[~escalated].mean())
    assert set(result.human_comparisons["verdict"]) <= {WITHIN, DISPARITY, INSUFFICIENT}
