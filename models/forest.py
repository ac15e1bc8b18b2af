"""Several fitted gradient-boosting models' trees as flat arrays, evaluated together in numpy.

scikit-learn's ``decision_function`` calls one Python-level predictor per tree, which costs
about 2 ms per model for a single row; the service scores one referral at a time and needs
the main model and its bootstrap refits together. Walking every tree level by level over
flat arrays gives the same raw scores (to rounding) in a few tens of microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

SMALL_BATCH = 64
"""Up to this many rows the flat arrays are faster; above it scikit-learn's compiled loop is."""


@dataclass(frozen=True)
class Forest:
    """Every tree of several models, nodes concatenated, one root per tree."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    model_of_tree: np.ndarray
    baselines: np.ndarray
    depth: int

    @classmethod
    def of(cls, models: Sequence[HistGradientBoostingClassifier]) -> Forest:
        """Flatten binary classifiers' trees (numeric splits only)."""
        parts, roots, owners, baselines, offset, depth = [], [], [], [], 0, 0
        for m, model in enumerate(models):
            if model.n_trees_per_iteration_ != 1:
                raise ValueError("only binary classifiers are supported")
            baselines.append(float(model._baseline_prediction.ravel()[0]))
            for (predictor,) in model._predictors:
                nodes = predictor.nodes
                if nodes["is_categorical"].any():
                    raise ValueError("categorical splits are not supported")
                shifted = nodes.copy()
                shifted["left"] += offset
                shifted["right"] += offset
                parts.append(shifted)
                roots.append(offset)
                owners.append(m)
                depth = max(depth, int(nodes["depth"].max()))
                offset += len(nodes)
        nodes = np.concatenate(parts)
        return cls(
            feature=nodes["feature_idx"].astype(np.intp),
            threshold=nodes["num_threshold"].astype(np.float64),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            left=nodes["left"].astype(np.intp),
            right=nodes["right"].astype(np.intp),
            is_leaf=nodes["is_leaf"].astype(bool),
            value=nodes["value"].astype(np.float64),
            roots=np.asarray(roots, dtype=np.intp),
            model_of_tree=np.asarray(owners, dtype=np.intp),
            baselines=np.asarray(baselines),
            depth=depth,
        )

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Each model's raw score (``decision_function``) for each row: models x rows."""
        node = np.broadcast_to(self.roots, (X.shape[0], self.roots.size)).copy()
        rows = np.arange(X.shape[0])[:, None]
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(self.is_leaf[node], node, step)
        starts = np.flatnonzero(np.r_[True, np.diff(self.model_of_tree) != 0])
        sums = np.add.reduceat(self.value[node], starts, axis=1)
        scores: np.ndarray = sums.T + self.baselines[:, None]
        return scores
