"""Reproducible audits: seeded, byte-identical, ties and row order, clusters, judged once."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.dataset import age_band
from models.fairness import AuditConfig, audit, pseudonymise_document, to_document


def _clustered_world(n_households: int = 1500, seed: int = 8) -> dict[str, Any]:
    """Families of one to four children sharing ethnicity, score, outcome and decision."""
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 5, n_households)
    family = np.repeat(np.arange(n_households), size)
    ethnicity = np.repeat(rng.choice(["white", "black", "asian"], n_households), size)
    # Rounded scores: many ties, at the capacity cuts too.
    score = np.repeat(np.round(rng.beta(2, 6, n_households), 2), size)
    y = np.repeat((rng.random(n_households) < score[np.cumsum(size) - 1]).astype(float), size)
    truth = np.maximum(y, np.repeat(rng.random(n_households) < 0.1, size)).astype(float)
    escalated = np.repeat(rng.random(n_households) < 0.3, size)
    decisions = pd.DataFrame(
        {
            "decision": np.where(escalated, "assessment", "no_further_action"),
            "band": np.where(score > 0.3, "Elevated", "Standard"),
        }
    )
    attributes = pd.DataFrame({"ethnicity": ethnicity, "sex": rng.choice(["f", "m"], family.size)})
    return {
        "y": y,
        "p": score,
        "attributes": attributes,
        "truth": truth,
        "decisions": decisions,
        "clusters": np.array([f"H{f:05d}" for f in family]),
        # A family's referrals may fall in different quarters: the quarter view is clustered.
        "periods": rng.choice(["2026-Q1", "2026-Q2", "2026-Q3"], family.size),
    }


CONFIG = AuditConfig(attributes=("ethnicity", "sex"), intersections=(), n_boot=100, seed=7)


def _run(world: dict[str, Any], config: AuditConfig = CONFIG, order: np.ndarray | None = None):
    order = np.arange(world["y"].size) if order is None else order
    return audit(
        world["y"][order],
        world["p"][order],
        world["attributes"].iloc[order].reset_index(drop=True),
        truth=world["truth"][order],
        decisions=world["decisions"].iloc[order].reset_index(drop=True),
        clusters=world["clusters"][order],
        periods=world["periods"][order],
        config=config,
    )


def _bytes(document: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in document.items() if k != "generated_at"}, sort_keys=True)


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    return _clustered_world()


def test_two_runs_give_byte_identical_documents_and_the_seed_is_recorded(world) -> None:
    first, second = to_document(_run(world)), to_document(_run(world))
    assert first["config"]["seed"] == 7
    assert _bytes(first) == _bytes(second)
    assert _bytes(pseudonymise_document(first)) == _bytes(pseudonymise_document(second))
    other = to_document(_run(world, AuditConfig(**{**CONFIG.__dict__, "seed": 8})))
    assert other["config"]["seed"] == 8 and _bytes(other) != _bytes(first)


def test_row_order_and_ties_do_not_change_any_verdict(world) -> None:
    base = _run(world)
    shuffled = _run(world, order=np.random.default_rng(1).permutation(world["y"].size))
    keys = ["grouping", "group", "label", "metric"]
    a = base.comparisons.sort_values(keys).reset_index(drop=True)
    b = shuffled.comparisons.sort_values(keys).reset_index(drop=True)
    assert (a["verdict"] == b["verdict"]).all()
    np.testing.assert_allclose(a["p_adjusted"], b["p_adjusted"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(a["difference_lower"], b["difference_lower"], rtol=1e-9)
    # The quarter view's bootstrap intervals and tests for change too.
    keys = ["grouping", "group", "label", "metric", "quarter"]
    qa = base.by_quarter.sort_values(keys).reset_index(drop=True)
    qb = shuffled.by_quarter.sort_values(keys).reset_index(drop=True)
    assert {"auc", "calibration_gap", "fnr_at_10"} <= set(qa["metric"])
    for column in ("estimate", "lower", "upper"):
        np.testing.assert_allclose(qa[column], qb[column], rtol=1e-9, equal_nan=True)
    keys = ["grouping", "group", "label", "metric"]
    ca = base.quarter_change.sort_values(keys).reset_index(drop=True)
    cb = shuffled.quarter_change.sort_values(keys).reset_index(drop=True)
    np.testing.assert_allclose(ca["p_value"], cb["p_value"], rtol=1e-7, equal_nan=True)
    # Ties at the cut are all selected, whatever their order.
    counts = base.metrics.query("metric == 'selection_rate_at_10'")["numerator"].to_numpy()
    again = shuffled.metrics.query("metric == 'selection_rate_at_10'")["numerator"].to_numpy()
    np.testing.assert_array_equal(np.sort(counts), np.sort(again))


def test_row_order_changes_no_figure_to_the_last_bit(world) -> None:
    # Continuous scores: sums of floats in another order would round differently. Engines
    # hand rows in their own order (Spark as counted cells), so the document must not move.
    rng = np.random.default_rng(3)
    varied = {**world, "p": np.clip(world["p"] + rng.normal(0, 0.01, world["p"].size), 0, 1)}
    shuffle = rng.permutation(world["y"].size)
    assert _bytes(to_document(_run(varied))) == _bytes(to_document(_run(varied, order=shuffle)))
    one_less = {
        k: (v.iloc[1:] if isinstance(v, pd.DataFrame) else v[1:]) for k, v in varied.items()
    }
    assert _bytes(to_document(_run(one_less))) != _bytes(to_document(_run(varied)))


def test_inference_is_cluster_aware_by_default_and_independent_on_request(world) -> None:
    clustered = _run(world)
    independent = _run(world, AuditConfig(**{**CONFIG.__dict__, "bootstrap": "stratified"}))
    assert clustered.inference == "household" and independent.inference == "independent"
    assert to_document(clustered)["config"]["inference"] == "household"
    pick = "grouping == 'ethnicity' and group == 'black' and label == 'observed'"
    wide = clustered.metrics.query(pick + " and metric == 'base_rate'")
    narrow = independent.metrics.query(pick + " and metric == 'base_rate'")
    width = float((wide["upper"] - wide["lower"]).iloc[0])
    assert width > 1.3 * float((narrow["upper"] - narrow["lower"]).iloc[0])
    # Human decisions are shared by a family: their design effect is well above 1.
    effect = clustered.human_comparisons.query("metric == 'escalated_rate'")["design_effect"]
    assert (effect > 1.5).all()
    assert (independent.human_comparisons["design_effect"] == 1).all()
    no_ids = audit(world["y"], world["p"], world["attributes"], config=CONFIG)
    assert no_ids.inference == "independent"


def test_label_free_metrics_are_judged_once(world) -> None:
    result = _run(world)
    truth = result.comparisons[result.comparisons["label"] == "truth"]
    assert not truth["metric"].str.match(r"^(mean_score|selection_rate_at_\d+)$").any()
    observed = result.comparisons[result.comparisons["label"] == "observed"]
    assert observed["metric"].eq("selection_rate_at_10").any()
    document = to_document(result)
    counted = sum(sum(v.values()) for v in document["summary"]["verdicts"].values())
    assert counted == len(result.comparisons)
    assert not any(r["metric"] == "mean_score" for r in document["label_gap"])


def test_age_bands_include_18_or_over_and_before_birth() -> None:
    months = pd.Series([-2.0, 5, 17 * 12 + 11, 18 * 12, 19 * 12 + 3, np.nan])
    assert list(age_band(months)) == [
        "before birth",
        "under 1",
        "16-17",
        "18 or over",
        "18 or over",
        "missing",
    ]
