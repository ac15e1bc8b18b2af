"""Tabulated TreeSHAP equals shap's TreeExplainer and adds up to the model's raw score.

With a reference for some features (the priority policy's "none"), the tables equal a
brute-force Shapley computation of the referenced game, and a monotone feature's value is its
gain over the reference.
"""

from __future__ import annotations

import math
import pickle
from itertools import combinations

import numpy as np
import pytest
import shap
from sklearn.ensemble import HistGradientBoostingClassifier

from models.families import Challenger
from models.splits import TRAIN, VALIDATION
from models.treeshap import CHUNK_ROWS, TreeShapTables

TOL = 1e-6


def _reference(model: HistGradientBoostingClassifier, X: np.ndarray) -> tuple[np.ndarray, float]:
    explainer = shap.TreeExplainer(model)
    return np.asarray(explainer.shap_values(X)), float(np.ravel(explainer.expected_value)[0])


def _assert_exact(model: HistGradientBoostingClassifier, X: np.ndarray, threads: int = 2) -> None:
    tables = TreeShapTables.of(model)
    ours = tables.shap_values(X, threads=threads)
    values, expected = _reference(model, X)
    assert ours.shape == values.shape
    assert np.abs(ours - values).max() < TOL
    assert abs(tables.expected_value - expected) < TOL
    additive = tables.expected_value + ours.sum(axis=1) - model.decision_function(X)
    assert np.abs(additive).max() < TOL


@pytest.fixture(scope="module")
def challenger_and_rows(small_world_data) -> tuple[Challenger, np.ndarray]:
    """A challenger fitted on the small synthetic world (conftest's, read only), and every row
    of it."""
    data = small_world_data
    X = {p: data.features.loc[data.part(p)].to_numpy(dtype=float) for p in (TRAIN, VALIDATION)}
    y = {p: data.label.loc[data.part(p)].to_numpy(dtype=int) for p in (TRAIN, VALIDATION)}
    groups = data.household_id.loc[data.part(TRAIN)].to_numpy()
    challenger = Challenger(tuple(data.features.columns)).fit(
        X[TRAIN], y[TRAIN], X[VALIDATION], y[VALIDATION], groups=groups, n_boot=1
    )
    return challenger, data.features.to_numpy(dtype=float)


def _random_model(
    depth: int, seed: int, **kwargs
) -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3_000, 6))
    X[:, 5] = rng.integers(0, 3, size=3_000)  # few distinct values: repeated splits on a path
    X[rng.random(X.shape) < 0.15] = np.nan
    signal = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2])
    y = (signal + np.isnan(X[:, 3]) + rng.normal(size=3_000) > 0.5).astype(int)
    params = {"max_depth": depth, "max_iter": 40, "min_samples_leaf": 20, "random_state": seed}
    model = HistGradientBoostingClassifier(**(params | kwargs)).fit(X, y)
    return model, X


def _game(nodes: np.ndarray, x: np.ndarray, known: set[int], reference: dict[int, float]) -> float:
    """v(S) of one tree by recursion: known features follow x, referenced ones the reference."""

    def value(node: int) -> float:
        if nodes["is_leaf"][node]:
            return float(nodes["value"][node])
        feature = int(nodes["feature_idx"][node])
        left, right = int(nodes["left"][node]), int(nodes["right"][node])
        if feature in known or feature in reference:
            v = x[feature] if feature in known else reference[feature]
            goes_left = (
                bool(nodes["missing_go_to_left"][node])
                if np.isnan(v)
                else v <= nodes["num_threshold"][node]
            )
            return value(left if goes_left else right)
        share = nodes["count"][left] / nodes["count"][node]
        return share * value(left) + (1 - share) * value(right)

    return value(0)


def _brute_force(
    model: HistGradientBoostingClassifier, X: np.ndarray, reference: dict[int, float]
) -> tuple[np.ndarray, float]:
    """Shapley values of the referenced game, tree by tree over each tree's own features."""
    out = np.zeros(X.shape)
    expected = float(np.ravel(model._baseline_prediction)[0])
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        internal = ~nodes["is_leaf"].astype(bool)
        features = sorted({int(f) for f in nodes["feature_idx"][internal]})
        expected += _game(nodes, X[0], set(), reference)
        d = len(features)
        for r, x in enumerate(X):
            for i, f in enumerate(features):
                others = features[:i] + features[i + 1 :]
                for size in range(d):
                    weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                    for subset in combinations(others, size):
                        with_f = _game(nodes, x, {*subset, f}, reference)
                        without = _game(nodes, x, set(subset), reference)
                        out[r, f] += weight * (with_f - without)
    return out, expected


def test_challenger_contributions_are_exact_and_measure_policy_signals_from_none(
    challenger_and_rows,
):
    challenger, rows = challenger_and_rows
    X = rows[: 5 * CHUNK_ROWS + 17]  # several chunks, a ragged last one, threads used
    assert np.isnan(X).any()
    base, contrib = challenger.contributions(X)
    assert np.abs(base + contrib.sum(axis=1) - challenger.log_odds(X)).max() < TOL
    reference = challenger._references()
    assert reference, "the catalogue's never-lowers signals are model inputs"
    prepared = challenger._prepared(X[:3])
    values, expected = _brute_force(challenger.model_, prepared, reference)
    assert np.abs(contrib[:3] - challenger.b_ * values).max() < TOL
    assert np.allclose(base, challenger.a_ + challenger.b_ * expected, rtol=0, atol=TOL)
    assert contrib[:, list(reference)].min() >= -TOL
    # Without a reference the same tables are shap's path-dependent TreeSHAP.
    _assert_exact(challenger.model_, challenger._prepared(rows[:3_000]))


@pytest.mark.parametrize("depth", [2, 3])
def test_referenced_tables_equal_brute_force_shapley(depth):
    model, X = _random_model(depth, seed=depth + 20)
    reference = {0: -0.5, 3: math.nan, 5: 0.0}
    tables = TreeShapTables.of(model, reference=reference)
    rows = X[:6]
    values, expected = _brute_force(model, rows, reference)
    assert np.abs(tables.shap_values(rows, threads=1) - values).max() < TOL
    assert abs(tables.expected_value - expected) < TOL
    additive = (
        tables.expected_value + tables.shap_values(X).sum(axis=1) - model.decision_function(X)
    )
    assert np.abs(additive).max() < TOL


def test_a_monotone_feature_gains_over_its_reference_never_below_zero():
    model, X = _random_model(3, seed=31, monotonic_cst=[1, 0, 0, 0, 0, 1])
    X = X[~np.isnan(X[:, 0]) & ~np.isnan(X[:, 5])]
    low = {0: float(X[:, 0].min()), 5: 0.0}
    values = TreeShapTables.of(model, reference=low).shap_values(X)
    assert values[:, 0].min() >= -TOL and values[:, 5].min() >= -TOL
    assert values[:, 0].max() > 0.01, "the feature matters, so the test can fail"
    # Path-dependent TreeSHAP (no reference) puts low values below zero.
    assert TreeShapTables.of(model).shap_values(X)[:, 0].min() < -0.01


def test_single_rows_and_one_thread_agree(challenger_and_rows):
    challenger, rows = challenger_and_rows
    tables = TreeShapTables.of(challenger.model_, reference=challenger._references())
    X = rows[:2_000]
    prepared = challenger._prepared(X)
    batch = tables.shap_values(prepared)
    assert np.array_equal(tables.shap_values(prepared, threads=1), batch)
    for i in (0, 1, 999):
        assert (
            np.abs(challenger.contributions(X[i : i + 1])[1][0] - challenger.b_ * batch[i]).max()
            < TOL
        )


def test_tables_are_not_pickled(challenger_and_rows):
    challenger, rows = challenger_and_rows
    challenger.contributions(rows[:5])
    assert "_tree_shap" in challenger.__dict__
    copy = pickle.loads(pickle.dumps(challenger))
    assert "_tree_shap" not in copy.__dict__
    assert np.array_equal(copy.contributions(rows[:50])[1], challenger.contributions(rows[:50])[1])


@pytest.mark.parametrize("depth", [2, 3])
def test_small_models_with_missing_values_equal_shap(depth):
    model, X = _random_model(depth, seed=depth)
    _assert_exact(model, X)
    _assert_exact(model, X[:7], threads=1)


def test_all_missing_rows_follow_the_missing_side():
    model, X = _random_model(3, seed=5)
    _assert_exact(model, np.full((10, X.shape[1]), np.nan))


def test_rows_on_the_thresholds_go_left():
    model, X = _random_model(3, seed=6)
    nodes = np.concatenate([p.nodes for (p,) in model._predictors])
    nodes = nodes[~nodes["is_leaf"].astype(bool)]
    edge = np.tile(np.nanmedian(X, axis=0), (len(nodes), 1))
    edge[np.arange(len(nodes)), nodes["feature_idx"]] = nodes["num_threshold"]
    _assert_exact(model, edge)


def _leaf_only_model(X: np.ndarray) -> HistGradientBoostingClassifier:
    rng = np.random.default_rng(7)
    y = (rng.random(X.shape[0]) < 0.3).astype(int)
    # leaves must hold more than half the rows: no split is possible, every tree is one leaf
    model = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=X.shape[0] // 2 + 1)
    return model.fit(X, y)


def test_leaf_only_trees():
    X = np.random.default_rng(7).normal(size=(200, 6))
    model = _leaf_only_model(X)
    assert all(len(p.nodes) == 1 for (p,) in model._predictors)
    assert not TreeShapTables.of(model).shap_values(X).any()
    _assert_exact(model, X)


def test_leaf_only_trees_among_split_trees():
    model, X = _random_model(3, seed=8)
    leaf_only = _leaf_only_model(np.nan_to_num(X))
    model._predictors = [*model._predictors[:10], *leaf_only._predictors, *model._predictors[10:]]
    _assert_exact(model, X)
