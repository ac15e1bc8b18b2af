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


@pytest.mark.parametrize("grouping", ["ethnicity", "sex", "deprivation_band"])
def test_summary_measures_equal_fairlearn(small_audit, grouping) -> None:
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
    )

    from models.fairness import to_document

    y, p, attributes, result = small_audit
    rows = {
        (r["measure"], r["method"], r["capacity"]): r
        for r in to_document(result)["summary_measures"]
        if r["grouping"] == grouping and r["label"] in (None, "observed")
    }
    sensitive = attributes[grouping]
    for capacity in (10, 30):
        flagged = (p >= result.thresholds[capacity]).astype(int)
        for method in ("between_groups", "to_overall"):
            kwargs = {"sensitive_features": sensitive, "method": method}
            dp, eo = (
                rows[("demographic_parity", method, capacity)],
                rows[("equalized_odds", method, capacity)],
            )
            assert dp["difference"] == pytest.approx(
                demographic_parity_difference(y, flagged, **kwargs), abs=1e-12
            )
            assert dp["ratio"] == pytest.approx(
                demographic_parity_ratio(y, flagged, **kwargs), abs=1e-12
            )
            assert eo["difference"] == pytest.approx(
                equalized_odds_difference(y, flagged, **kwargs), abs=1e-12
            )
            assert eo["ratio"] == pytest.approx(
                equalized_odds_ratio(y, flagged, **kwargs), abs=1e-12
            )
        reference = rows[("demographic_parity", "to_reference", capacity)]
        rates = result.metrics.query(
            f"grouping == '{grouping}' and metric == 'selection_rate_at_{capacity}'"
        ).set_index("group")["estimate"]
        ref = rates[result.references[grouping]["group"]]
        assert reference["difference"] == pytest.approx((rates - ref).abs().max())


def test_humans_against_the_model_at_the_same_capacity() -> None:
    from models.fairness import to_document

    y, p, attributes = _world(4000)
    escalated = p > np.quantile(p, 0.77)  # 23% escalated: not one of the fixed capacities
    decisions = pd.DataFrame({"decision": np.where(escalated, "assessment", "no_further_action")})
    config = AuditConfig(attributes=("ethnicity",), intersections=(), n_boot=20)
    result = audit(y, p, attributes, decisions=decisions, config=config)
    assert result.human_capacity == 0.23 and 23 in result.thresholds
    document = to_document(result)
    rows = {
        (r["group"], r["measure"]): r
        for r in document["human_vs_model"]
        if r["grouping"] == "ethnicity"
    }
    white = attributes["ethnicity"] == "white"
    flagged = p >= result.thresholds[23]
    assert rows[("white", "selected")]["human"] == pytest.approx(escalated[white].mean())
    assert rows[("white", "selected")]["model"] == pytest.approx(flagged[white].mean())
    positive = white & (y == 1)
    reached = rows[("white", "positives_reached")]
    assert reached["human"] == pytest.approx(escalated[positive].mean())
    assert reached["model"] == pytest.approx(flagged[positive].mean())
