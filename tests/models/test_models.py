"""Models: honest splits, exact contributions, the choice rule, bands, gates, MLflow registry."""

from __future__ import annotations

import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.catalogue import SIGNALS, Direction
from models.bands import Bands
from models.families import sigmoid
from models.gates import GateConfig, check_gates, fnr_gates
from models.splits import EXCLUDED, TEST, TRAIN, VALIDATION, temporal_household_split
from models.train import TrainConfig, choose, train

FAST = TrainConfig(scorecard_bootstraps=3, challenger_bootstraps=2, evaluation_bootstraps=20)


@pytest.fixture(scope="module")
def extract(small_world_extract) -> Path:
    """A small synthetic extract on disk."""
    return small_world_extract


@pytest.fixture(scope="module")
def data(small_world_data):
    """Its training table."""
    return small_world_data


@pytest.fixture(scope="module")
def fitted(fitted_families):
    """Both families fitted on the train split and calibrated on validation."""
    return fitted_families


def test_split_is_by_time_and_no_household_is_on_two_sides(data):
    split, t, hh = data.split, data.received_at, data.household_id
    year = pd.Timedelta(days=365)
    assert t[split == TRAIN].max() + year <= t[split == VALIDATION].min()
    assert t[split == VALIDATION].max() < t[split == TEST].min()
    sides = {p: set(hh[split == p]) for p in (TRAIN, VALIDATION, TEST)}
    assert not sides[TRAIN] & sides[VALIDATION]
    assert not sides[TRAIN] & sides[TEST]
    assert not sides[VALIDATION] & sides[TEST]
    assert (split == EXCLUDED).any(), "families seen later are taken out of earlier partitions"


def test_split_excludes_only_families_seen_later():
    t = pd.Series(
        pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01", "2020-05-01"])
    )
    hh = pd.Series(["A", "C", "B", "C", "A"])
    split = temporal_household_split(t, hh, replace_spec(0.2, 0.2, horizon=0))
    assert list(split) == [EXCLUDED, EXCLUDED, TRAIN, VALIDATION, TEST]


def test_labels_still_open_when_a_later_period_starts_are_excluded():
    t = pd.Series(
        pd.to_datetime(["2020-01-01", "2020-03-01", "2020-05-01", "2020-07-01", "2020-09-01"])
    )
    hh = pd.Series(["A", "B", "C", "D", "E"])
    split = temporal_household_split(t, hh, replace_spec(0.2, 0.2, horizon=90))
    # Validation starts 2020-07-01; a 90-day horizon from 2020-05-01 reaches past it.
    assert list(split) == [TRAIN, TRAIN, EXCLUDED, VALIDATION, TEST]


def replace_spec(validation: float, test: float, horizon: int = 365):
    """A split specification."""
    from models.splits import SplitSpec

    return SplitSpec(validation_share=validation, test_share=test, label_horizon_days=horizon)


def test_scorecard_contributions_are_exact_and_match_shap(fitted):
    import shap

    scorecard, _, X, _ = fitted
    base, contrib = scorecard.contributions(X[TEST])
    np.testing.assert_allclose(base + contrib.sum(axis=1), scorecard.log_odds(X[TEST]), atol=1e-6)
    # shap's LinearExplainer on the one-hot design, grouped back to signals, gives the same.
    flat = scorecard.flat_table_
    explainer = shap.LinearExplainer(
        (flat, scorecard.base_ - flat @ scorecard.background_),
        shap.maskers.Independent(scorecard.background_[None, :]),
    )
    onehot = scorecard._one_hot(X[TEST][:300])
    values = explainer.shap_values(onehot)
    grouped = np.add.reduceat(values, scorecard.offsets, axis=1)
    np.testing.assert_allclose(grouped, contrib[:300], atol=1e-6)


def test_challenger_contributions_add_up_and_respect_monotonic_directions(fitted):
    _, challenger, X, _ = fitted
    sample = X[TEST][:300]
    base, contrib = challenger.contributions(sample)
    np.testing.assert_allclose(base + contrib.sum(axis=1), challenger.log_odds(sample), atol=1e-4)
    names = challenger.signals
    for j, name in enumerate(names):
        direction = SIGNALS[name].direction
        if direction is None:
            continue
        bumped = sample.copy()
        bumped[:, j] = np.nan_to_num(bumped[:, j], nan=0.0) + 1
        moved = challenger.log_odds(bumped) - challenger.log_odds(
            np.where(np.isnan(sample), np.nan, sample)
        )
        finite = ~np.isnan(sample[:, j])
        if direction is Direction.raises:
            assert (moved[finite] >= -1e-9).all(), name
        else:
            assert (moved[finite] <= 1e-9).all(), name


def test_both_families_are_calibrated_and_ranges_bracket_the_score(fitted):
    for model in fitted[:2]:
        X, y = fitted[2], fitted[3]
        p = sigmoid(model.log_odds(X[TEST]))
        assert abs(p.mean() - y[TEST].mean()) < 0.04
        low, high = model.probability_range(X[TEST][:200])
        assert (low <= high).all() and (high - low).mean() > 0


def test_scorecard_shape_functions_read_by_bin(fitted):
    shapes = fitted[0].shape_functions()
    assert shapes["days_since_last_referral"][0][0] == "none"
    assert [label for label, _ in shapes["prior_referrals_child_365d"]][:2] == ["< 1", "1"]


def test_choice_prefers_the_scorecard_unless_the_challenger_is_clearly_better():
    config = TrainConfig()
    close = {"scorecard": {"auc": 0.80}, "challenger": {"auc": 0.805}}
    family, reason = choose(close, config)
    assert family == "scorecard" and "within the margin" in reason
    clear = {"scorecard": {"auc": 0.80}, "challenger": {"auc": 0.85}}
    assert choose(clear, config)[0] == "challenger"


def test_bands_take_the_highest_threshold_reached():
    bands = Bands(thresholds=(0.6, 0.3, 0.1))
    got = bands.assign(np.array([0.9, 0.6, 0.45, 0.3, 0.2, 0.05]))
    assert list(got) == [
        "Review first",
        "Review first",
        "Elevated",
        "Elevated",
        "Standard",
        "Lower",
    ]
    fitted_bands = Bands.from_scores(np.linspace(0, 1, 1001))
    assert fitted_bands.thresholds == pytest.approx((0.95, 0.80, 0.40))


def test_a_metric_that_could_not_be_computed_fails_its_gate():
    results = check_gates(
        {"auc": float("nan"), "calibration_slope": float("nan")}, {}, GateConfig()
    )
    assert [g.passed for g in results] == [False, False]
    assert all(g.shortfall == float("inf") for g in results)


def test_a_failed_gate_names_itself_and_how_far_off():
    groups = {
        "ethnicity": pd.DataFrame(
            {
                "n": [900, 800, 10],
                "calibration_gap": [0.01, 0.09, 0.5],
                "suppressed": [False, False, True],
            },
            index=["white", "black", "other"],
        )
    }
    results = {
        g.gate: g for g in check_gates({"auc": 0.6, "calibration_slope": 1.3}, groups, GateConfig())
    }
    assert results["min_auc"].shortfall == pytest.approx(0.05)
    assert results["calibration_slope"].shortfall == pytest.approx(0.1)
    gap = results["group_calibration_gap:ethnicity"]
    assert not gap.passed and gap.value == pytest.approx(0.08) and "black vs white" in gap.detail


def test_an_ablation_trains_without_the_signals_it_names(extract):
    left_out = ("prior_referrals_child_90d", "referrer_relative_friend")
    result = train(extract, replace(FAST, without=left_out))
    assert set(result.scorer.signals).isdisjoint(left_out)
    assert list(result.data.features.columns) == list(result.scorer.signals)
    assert len(result.scorer.signals) == len(FAST.inputs()) - len(left_out)
    with pytest.raises(ValueError, match="not model inputs"):
        replace(FAST, without=("referrer_professional",)).inputs()


def test_train_logs_registers_and_promotes_only_through_the_gates(extract, tmp_path):
    from models.tracking import champion_version, load_champion_scorer, log_and_register

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = train(extract, FAST)
    assert result.promoted
    first = log_and_register(
        result, tracking_uri=uri, model_name="referral-triage", alias="champion"
    )
    assert first.promoted and first.version == "1"
    champion = load_champion_scorer(
        tracking_uri=uri, model_name="referral-triage", alias="champion"
    )
    assert champion.version == "referral-triage/1"
    features = result.data.features.head(50)
    np.testing.assert_allclose(
        champion.score(features).probability, result.scorer.score(features).probability
    )

    strict = train(extract, replace(FAST, gates=GateConfig(min_auc=0.99)))
    assert not strict.promoted
    second = log_and_register(
        strict, tracking_uri=uri, model_name="referral-triage", alias="champion"
    )
    assert second.version == "2" and not second.promoted
    still = load_champion_scorer(tracking_uri=uri, model_name="referral-triage", alias="champion")
    assert still.version == "referral-triage/1", "a failed gate leaves the champion alone"
    named = partial(champion_version, tracking_uri=uri, model_name="referral-triage")
    assert named(alias="champion") == "referral-triage/1"
    assert named(alias="no-such-alias") is None
    assert champion_version(tracking_uri=uri, model_name="no-such-model", alias="champion") is None
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias("referral-triage", "champion", "2")
    assert named(alias="champion") == "referral-triage/2", "what a serving worker polls"

    run = mlflow.get_run(first.run_id)
    assert run.data.params["data_fingerprint"] == result.data.fingerprint
    assert "test_auc_lower" in run.data.metrics and "truth_auc" in run.data.metrics
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(first.run_id)}
    assert {"model_card.md", "model_card.json", "gates.json", "plots"} <= artifacts
    card = mlflow.artifacts.load_text(f"runs:/{first.run_id}/model_card.md")
    sections = ("Intended use", "Out-of-scope uses", "Factors", "Metrics", "Evaluation data",
                "Training data", "Quantitative analyses by group", "Ethical considerations",
                "Caveats")  # fmt: skip
    for section in sections:
        assert f"## {section}" in card


def test_the_card_reports_what_sharing_delays_cost(extract, tmp_path):
    from models.card import card_markdown

    # The same extract with every event shared when it occurred, and shared late.
    copies = {}
    events = pd.read_parquet(extract / "events.parquet")
    events = events.drop(columns="recorded_at", errors="ignore")
    days = np.random.default_rng(0).exponential(30.0, len(events))
    for name, frame in (
        ("on_time", events),
        ("delayed", events.assign(recorded_at=events["occurred_at"] + pd.to_timedelta(days, "D"))),
    ):
        copies[name] = tmp_path / name
        shutil.copytree(extract, copies[name])
        frame.to_parquet(copies[name] / "events.parquet", index=False)
    on_time = train(copies["on_time"], FAST)
    cost = on_time.delay_cost
    assert cost["events_recorded_late"] == 0 and cost["against"] == "latent truth"
    assert cost["auc_if_no_delays"] == cost["auc_as_recorded"] and cost["cost"] == 0
    assert "the delays cost nothing here" in card_markdown(on_time)

    late = train(copies["delayed"], FAST)
    cost = late.delay_cost
    assert cost["events_recorded_late"] == len(events)
    assert cost["auc_if_no_delays"] != cost["auc_as_recorded"]
    assert cost["cost"] == cost["auc_if_no_delays"] - cost["auc_as_recorded"]
    card = card_markdown(late)
    assert "## What sharing delays cost" in card and "cost nothing" not in card
    assert not late.data.features.equals(late.data.features_without_delays)


@pytest.mark.parametrize("rows", [1, 7, 200])
def test_challenger_small_batches_match_scikit_learn(fitted, rows):
    _, challenger, X, _ = fitted
    sample = X[TEST][:rows].copy()
    sample[0, 0] = np.nan  # a missing value takes its learned side
    expected = challenger.a_ + challenger.b_ * challenger.model_.decision_function(sample)
    np.testing.assert_allclose(challenger.log_odds(sample), expected, rtol=0, atol=1e-10)
    refits = np.array([a + b * m.decision_function(sample) for m, a, b in challenger.refits_])
    low, high = challenger.probability_range(sample)
    q = np.quantile(sigmoid(refits), [0.05, 0.95], axis=0)
    np.testing.assert_allclose([low, high], q, rtol=0, atol=1e-10)


def test_the_fnr_gate_names_the_group_whose_children_are_missed_and_by_how_much():
    rng = np.random.default_rng(3)
    n = 4000
    group = pd.Series(np.where(np.arange(n) % 4 == 0, "housing", "police"))
    y = (rng.random(n) < 0.2).astype(np.int64)
    p = rng.random(n) * 0.5 + 0.5 * y  # positives score higher...
    p[(group == "housing").to_numpy() & (y == 1)] *= 0.3  # ...except housing's, pushed down
    config = GateConfig(fnr_capacity=0.2, max_group_fnr_excess=0.1, min_group_positives=50)
    [gate] = fnr_gates(y, p, {"referrer_type": group}, config)
    flagged = np.zeros(n, dtype=bool)
    flagged[np.argsort(-p, kind="stable")[:800]] = True
    overall = 1 - flagged[y == 1].mean()
    housing = 1 - flagged[(y == 1) & (group == "housing").to_numpy()].mean()
    assert not gate.passed
    assert gate.value == pytest.approx(housing - overall)
    assert gate.shortfall == pytest.approx(housing - overall - 0.1)
    assert "referrer_type 'housing'" in gate.detail
    # The same scores without the push pass; a group too small to judge is left out.
    fair = rng.random(n) * 0.5 + 0.5 * y
    assert fnr_gates(y, fair, {"referrer_type": group}, config)[0].passed
    tiny = GateConfig(fnr_capacity=0.2, min_group_positives=10_000)
    [skipped] = fnr_gates(y, p, {"referrer_type": group}, tiny)
    assert skipped.passed and "no group has" in skipped.detail
