"""Fairness audit: metrics equal fairlearn's, intervals, corrections, verdicts, suppression."""

from __future__ import annotations

import json

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
from sklearn.metrics import brier_score_loss, precision_score, roc_auc_score

from models.fairness import (
    DISPARITY,
    INSUFFICIENT,
    WITHIN,
    AuditConfig,
    ReferenceGroups,
    audit,
    benjamini_hochberg,
    deprivation_band,
    holm,
    verdicts,
    wilson_interval,
)
from models.fairness_report import (
    SCHEMA_VERSION,
    render_html,
    to_document,
    validate_document,
)

ATTRS = ("ethnicity", "sex", "deprivation_band")
INTERSECTIONS = (("ethnicity", "deprivation_band"), ("ethnicity", "sex"))


def _world(n: int = 6000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    attributes = pd.DataFrame(
        {
            "ethnicity": rng.choice(
                ["white", "asian", "black", "mixed"], n, p=[0.55, 0.2, 0.15, 0.1]
            ),
            "sex": rng.choice(["female", "male"], n),
            "deprivation_band": rng.choice(["1-2", "3-4", "5-6"], n),
        }
    )
    # Rounded scores create ties at the capacity cuts, which every metric must handle.
    p = np.round(rng.beta(2, 6, n) + 0.05 * (attributes["ethnicity"] == "black"), 3).clip(0, 1)
    y = (rng.random(n) < p).astype(float)
    return y, p, attributes


@pytest.fixture(scope="module")
def small_audit():
    y, p, attributes = _world()
    config = AuditConfig(attributes=ATTRS, intersections=INTERSECTIONS, n_boot=200, min_size=30)
    return y, p, attributes, audit(y, p, attributes, config=config)


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


def test_wilson_interval_matches_known_values() -> None:
    lower, upper = wilson_interval(np.array([5, 0, 10]), np.array([10, 10, 10]))
    np.testing.assert_allclose(lower, [0.236593, 0.0, 0.722467], atol=1e-6)
    np.testing.assert_allclose(upper, [0.763407, 0.277533, 1.0], atol=1e-6)
    lower, upper = wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(lower[0]) and np.isnan(upper[0])


def test_holm_and_benjamini_hochberg() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p)[:4], [0.02, 0.04, 0.04, 0.02])
    assert np.isnan(holm(p)[4]) and np.isnan(benjamini_hochberg(p)[4])
    assert holm(np.array([0.9, 0.8]))[0] == 1.0


def test_verdicts_follow_the_documented_rule() -> None:
    estimate = np.array([0.10, 0.01, 0.10, 0.02, np.nan])
    lower = np.array([0.07, -0.02, -0.01, -0.08, np.nan])
    upper = np.array([0.13, 0.04, 0.21, 0.12, np.nan])
    p_adj = np.array([0.001, 0.4, 0.2, 0.6, np.nan])
    out = verdicts(estimate, lower, upper, p_adj, 0.05)
    assert list(out) == [DISPARITY, WITHIN, INSUFFICIENT, INSUFFICIENT, INSUFFICIENT]
    # Significant but small: not a disparity, and within tolerance only if the interval is.
    assert verdicts(np.array([0.02]), np.array([0.01]), np.array([0.03]), np.array([1e-6]), 0.05)[
        0
    ] == (WITHIN)


def test_planted_disparity_equal_groups_and_small_groups() -> None:
    rng = np.random.default_rng(0)
    n = 40_000
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.49, 0.01])
    # Group "b" scores 0.15 higher: it dominates the top of the queue.
    p = np.clip(rng.beta(2, 6, n) + 0.15 * (group == "b"), 0, 1)
    y = (rng.random(n) < p).astype(float)
    sex = rng.choice(["f", "m"], n)
    attributes = pd.DataFrame({"ethnicity": group, "sex": sex})
    config = AuditConfig(
        attributes=("ethnicity", "sex"), intersections=(), n_boot=200, min_size=500
    )
    result = audit(y, p, attributes, config=config)
    table = result.comparisons.set_index(["grouping", "group", "metric"])
    assert table.loc[("ethnicity", "b", "selection_rate_at_10"), "verdict"] == DISPARITY
    assert table.loc[("sex", "m", "selection_rate_at_10"), "verdict"] == WITHIN
    assert table.loc[("sex", "m", "mean_score"), "verdict"] == WITHIN
    # "c" has about 400 referrals: suppressed, listed, never shown or tested.
    assert list(result.suppressed["group"]) == ["c"]
    assert result.suppressed.iloc[0]["reason"].startswith("fewer than 500")
    assert "c" not in set(result.metrics["group"]) | set(result.comparisons["group"])
    assert "c" not in set(result.ranking["group"])
    assert result.groups["n"][result.groups["grouping"] == "ethnicity"].sum() == n
    # Every comparison carries a verdict and a corrected p-value at least the raw one.
    assert set(result.comparisons["verdict"]) <= {WITHIN, DISPARITY, INSUFFICIENT}
    ok = result.comparisons["p_value"].notna()
    assert (result.comparisons.loc[ok, "p_adjusted"] >= result.comparisons.loc[ok, "p_value"]).all()


def test_small_but_shown_group_gives_insufficient_evidence() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    group = rng.choice(["a", "b"], n, p=[0.997, 0.003])
    p = rng.beta(2, 6, n)
    y = (rng.random(n) < p).astype(float)
    config = AuditConfig(attributes=("ethnicity",), intersections=(), n_boot=200, min_size=30)
    result = audit(y, p, pd.DataFrame({"ethnicity": group}), config=config)
    table = result.comparisons.set_index(["group", "metric"])
    assert table.loc[("b", "selection_rate_at_10"), "verdict"] == INSUFFICIENT


def test_reference_group_default_explicit_and_unknown(small_audit) -> None:
    y, p, attributes, result = small_audit
    assert result.references["ethnicity"] == {
        "group": "white",
        "rule": "largest",
        "version": "reference/1-largest",
        "suppressed": False,
    }
    config = AuditConfig(
        attributes=("ethnicity",),
        intersections=(),
        n_boot=20,
        references=ReferenceGroups(version="ref/test-2", groups={"ethnicity": "asian"}),
    )
    explicit = audit(y, p, attributes, config=config)
    assert explicit.references["ethnicity"]["group"] == "asian"
    assert explicit.references["ethnicity"]["rule"] == "explicit"
    assert explicit.references["ethnicity"]["version"] == "ref/test-2"
    assert set(explicit.comparisons["reference"]) == {"asian"}
    assert "asian" not in set(explicit.comparisons["group"])
    row = explicit.comparisons.query("group == 'black' and metric == 'mean_score'").iloc[0]
    assert row["difference"] == pytest.approx(row["estimate"] - row["reference_estimate"])
    bad = AuditConfig(references=ReferenceGroups(groups={"ethnicity": "nobody"}), n_boot=5)
    with pytest.raises(ValueError, match="nobody"):
        audit(y, p, attributes, config=bad)


def test_bootstrap_spread_matches_binomial_and_intervals_contain_estimates(small_audit) -> None:
    _, _, _, result = small_audit
    rows = result.metrics[
        (result.metrics["grouping"] == "ethnicity") & (result.metrics["metric"] == "base_rate")
    ]
    width = rows["upper"] - rows["lower"]
    wilson = rows["wilson_upper"] - rows["wilson_lower"]
    assert np.all(np.abs(width / wilson - 1) < 0.3)
    shown = result.metrics.dropna(subset=["estimate", "lower", "upper"])
    for metric in ("auc", "selection_rate_at_10", "mean_score", "calibration_slope"):
        part = shown[shown["metric"] == metric]
        inside = (part["lower"] <= part["estimate"] + 1e-12) & (
            part["estimate"] <= part["upper"] + 1e-12
        )
        assert inside.mean() > 0.9, metric


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
    ranking = result.ranking
    assert ranking["share_of_top_10"].sum() == pytest.approx(1.0)
    assert ranking["exposure_share"].sum() == pytest.approx(1.0)
    assert ranking.set_index("group").loc["black", "exposure_ratio"] > 1
    human = result.human.set_index(["group", "metric"])["estimate"]
    codes = attributes["ethnicity"] == "white"
    escalated, high = p[codes] > 0.3, p[codes] > 0.4
    assert human[("white", "escalated_rate")] == pytest.approx(escalated.mean())
    assert human[("white", "agreement_with_band")] == pytest.approx((escalated == high).mean())
    assert human[("white", "investigated_rate")] == pytest.approx((p[codes] > 0.5).mean())
    harm = truth[codes].astype(bool)
    assert human[("white", "harm_missed_rate")] == pytest.approx(harm[~escalated].mean())
    assert set(result.human_comparisons["verdict"]) <= {WITHIN, DISPARITY, INSUFFICIENT}


def test_deprivation_bands() -> None:
    bands = deprivation_band(pd.Series([1, 2, 3, 10, None]))
    assert list(bands) == ["1-2 (most deprived)", "1-2 (most deprived)", "3-4",
                           "9-10 (least deprived)", "missing"]  # fmt: skip


def test_document_schema_pseudonymised_and_html(small_audit) -> None:
    _, _, _, result = small_audit
    document = to_document(result, meta={"source": "/data/extract", "n_note": "x"})
    validate_document(document)
    assert document["schema_version"] == SCHEMA_VERSION
    json.dumps(document, allow_nan=False)
    assert document["suppressed"] == [] or "n" in document["suppressed"][0]
    private = to_document(result, meta={"source": "/data/extract"}, pseudonymise=True)
    validate_document(private)
    assert "source" not in private["meta"]
    assert private["config"]["min_count"] == 10
    for row in private["metrics"]:
        for key in ("numerator", "denominator"):
            assert row.get(key) is None or row[key] == 0 or row[key] >= 10
    hidden = [r for r in private["metrics"] if r.get("small_count_suppressed")]
    assert hidden and all(r["estimate"] is None for r in hidden)
    html = render_html(document)
    assert html.startswith("<!doctype html>") and "<svg" in html
    assert "data:image/png;base64," in html
    assert "<script" not in html and "https://" not in html.replace("http://www.w3.org", "")


def test_training_run_audit_is_logged_to_mlflow(tmp_path) -> None:
    import mlflow

    from explain.fairness_gaps import log_fairness_audit
    from models.tracking import configure_mlflow
    from models.train import TrainConfig, train
    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    extract = tmp_path / "extract"
    write_extract(generate_world(WorldParams(n_referrals=3_000, seed=7)), extract)
    fast = TrainConfig(scorecard_bootstraps=2, challenger_bootstraps=1, evaluation_bootstraps=5)
    result = train(extract, fast)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    configure_mlflow(uri)
    # Artifacts in tmp_path: the default experiment would put them under ./mlruns.
    experiment = mlflow.create_experiment("audit-test", artifact_location=tmp_path.as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        pass
    document = log_fairness_audit(
        run.info.run_id,
        result,
        tracking_uri=uri,
        directory=extract,
        config=AuditConfig(n_boot=50),
    )
    validate_document(document)
    assert document["meta"]["run_id"] == run.info.run_id and document["meta"]["synthetic"]
    metrics = {r["metric"] for r in document["human"]}
    assert {"escalated_rate", "investigated_rate", "agreement_with_band"} <= metrics
    assert {"harm_missed_rate", "not_escalated_despite_high_band"} <= metrics
    assert document["label_gap"] and document["why_gaps"]
    # Whose voice counts: relatives' referrals are a group beside professionals', on both
    # labels, for the model and for the people who decided.
    voice = {
        (r["group"], r["label"]) for r in document["metrics"] if r["grouping"] == "referrer_voice"
    }
    assert {("professional", "truth"), ("professional", "observed")} <= voice
    assert any(
        h["grouping"] == "referrer_voice" and h["metric"] == "harmed_not_escalated"
        for h in document["human"]
    )
    listed = {
        g["group"]
        for g in document["groups"] + document["suppressed"]
        if g["grouping"] == "referrer_voice"
    }
    assert {"family or friend", "professional", "anonymous"} <= listed
    assert "referrer_voice" in render_html(document)
    assert all("image" not in g for g in document["why_gaps"])
    shown = {(g["grouping"], g["group"]) for g in document["groups"]}
    hidden = {(g["grouping"], g["group"]) for g in document["suppressed"]}
    assert not shown & hidden
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "fairness")}
    assert artifacts == {"fairness/fairness_audit.json", "fairness/fairness_audit.html"}


def test_fisher_exact_matches_scipy_and_small_counts_use_it() -> None:
    from scipy.stats import fisher_exact

    from models.fairness import fisher_exact_p

    for k1, n1, k2, n2 in [(4, 5, 3, 23), (0, 7, 9, 12), (2, 2, 40, 90), (5, 50, 5, 50)]:
        expected = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
        assert fisher_exact_p(k1, n1, k2, n2) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_household_bootstrap_widens_intervals_for_clustered_families() -> None:
    rng = np.random.default_rng(4)
    households, size = 3000, 4
    # Siblings share ethnicity, score and outcome: four rows carry one family's information.
    ethnicity = np.repeat(rng.choice(["white", "black"], households, p=[0.6, 0.4]), size)
    p = np.repeat(rng.beta(2, 6, households), size)
    y = np.repeat((rng.random(households) < p[::size]).astype(float), size)
    family = np.repeat(np.arange(households), size)
    attributes = pd.DataFrame({"ethnicity": ethnicity})
    widths = {}
    for mode in ("stratified", "household"):
        config = AuditConfig(
            attributes=("ethnicity",), intersections=(), n_boot=300, bootstrap=mode
        )
        result = audit(y, p, attributes, clusters=family, config=config)
        rows = result.metrics.query("metric == 'selection_rate_at_10' and group == 'black'")
        widths[mode] = float((rows["upper"] - rows["lower"]).iloc[0])
        estimate = float(rows["estimate"].iloc[0])
        assert rows["lower"].iloc[0] <= estimate <= rows["upper"].iloc[0]
    assert 1.5 < widths["household"] / widths["stratified"] < 2.6
    with pytest.raises(ValueError, match="household"):
        audit(y, p, attributes, config=AuditConfig(bootstrap="household", n_boot=5))


def test_a_stored_document_pseudonymises_like_a_fresh_one(small_audit) -> None:
    from models.fairness_report import pseudonymise_document

    _, _, _, result = small_audit
    meta = {"source": "/data/extract", "run_id": "r1", "data_fingerprint": "f", "n_note": "x"}
    stored = to_document(result, meta=meta)
    fresh = to_document(result, meta=meta, pseudonymise=True)
    served = pseudonymise_document(stored)
    validate_document(served)
    for key in ("meta", "config", "suppressed", "metrics", "groups", "comparisons", "label_gap"):
        assert served[key] == json.loads(json.dumps(fresh[key])), key
    assert stored["meta"]["run_id"] == "r1", "the stored document is left as it was"
