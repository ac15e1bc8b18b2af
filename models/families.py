"""Two interpretable model families behind one interface, calibrated, with uncertainty.

Both return per-signal contributions that add up exactly to the calibrated log-odds:
calibration is Platt scaling (``a + b * log-odds``), which is linear in the log-odds, so the
contributions scale by ``b`` and the base absorbs ``a``. Isotonic calibration would break
that additivity, which is why it is not used.

Both obey the priority policy (``features.policy``): they are monotone in every signal the
catalogue gives a direction, and a signal the policy says never lowers priority has its
contribution measured from "none" (no such record), so it is never below zero.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from features.catalogue import SIGNALS, Aggregation
from features.policy import NEVER_LOWERS, priority_order_sign, reference_values
from models.evaluation import cluster_sampler
from models.forest import SMALL_BATCH, Forest
from models.treeshap import TreeShapTables

COUNT_EDGES = (1.0, 2.0, 3.0, 5.0)
AGE_EDGES = (6.0, 12.0, 24.0, 60.0, 132.0, 192.0)
DAYS_EDGES = (30.0, 90.0, 365.0, 730.0)
SCORECARD_C_GRID = (0.05, 0.2, 1.0)
NO_RECORD_DAYS = 1e6
"""What "no earlier record" is to a tree model reading a days-since signal: longer ago than any
record, so a monotone model can never rank it above an earlier referral."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Probability from log-odds."""
    probability: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return probability


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds from probability, clipped away from 0 and 1."""
    p = np.clip(p, 1e-9, 1 - 1e-9)
    log_odds: np.ndarray = np.log(p / (1 - p))
    return log_odds


@dataclass(frozen=True)
class Binning:
    """How one signal is cut into bins: edges, and whether missing values get their own bin."""

    edges: tuple[float, ...]
    missing_bin: bool

    @property
    def n_bins(self) -> int:
        """Number of bins including the missing bin."""
        return len(self.edges) + 1 + int(self.missing_bin)

    def index(self, values: np.ndarray) -> np.ndarray:
        """Bin of each value (0 is the missing bin when there is one)."""
        idx: np.ndarray = np.searchsorted(np.asarray(self.edges), values, side="right") + int(
            self.missing_bin
        )
        if self.missing_bin:
            idx = np.where(np.isnan(values), 0, idx)
        return idx

    def priority_order(self, sign: int) -> np.ndarray:
        """Bins from lowest to highest priority: "none" (missing) first, then by value.

        ``sign`` is +1 when larger values raise priority, -1 when they lower it (the value bins
        are then reversed) and 0 when undirected (value order, unconstrained anyway).
        """
        value_bins = np.arange(int(self.missing_bin), self.n_bins)
        if sign < 0:
            value_bins = value_bins[::-1]
        order: np.ndarray = np.r_[np.zeros(int(self.missing_bin), dtype=np.intp), value_bins]
        return order

    def labels(self) -> list[str]:
        """Readable bin labels."""
        out = ["none"] if self.missing_bin else []
        bounds = [-np.inf, *self.edges, np.inf]
        for lo, hi in itertools.pairwise(bounds):
            if lo == -np.inf:
                out.append(f"< {hi:g}")
            elif hi == np.inf:
                out.append(f"≥ {lo:g}")
            elif hi - lo == 1:
                out.append(f"{lo:g}")
            else:
                out.append(f"{lo:g} to < {hi:g}")
        return out


def binning_for(name: str) -> Binning:
    """The scorecard's bins for a signal, from its aggregation."""
    signal = SIGNALS[name]
    if signal.aggregation is Aggregation.exists:
        return Binning((0.5,), False)
    if signal.aggregation is Aggregation.value:
        return Binning(AGE_EDGES, False)
    if signal.aggregation is Aggregation.days_since:
        return Binning(DAYS_EDGES, True)
    return Binning(COUNT_EDGES, False)


def _platt(raw_log_odds: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling fitted on held-out data: calibrated log-odds = a + b * raw."""
    model = LogisticRegression(C=1e6, max_iter=1000).fit(raw_log_odds.reshape(-1, 1), y)
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def _monotone_logistic(
    Z: np.ndarray, y: np.ndarray, c: float, bounded: np.ndarray
) -> tuple[float, np.ndarray]:
    """L2-penalised logistic regression with ``coef >= 0`` where ``bounded`` (L-BFGS-B).

    Minimises ``c * log-loss + |coef|² / 2``, scikit-learn's parametrisation; the intercept is
    not penalised.
    """
    m = Z.shape[1]
    yf = y.astype(np.float64)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        eta = w[0] + Z @ w[1:]
        log1p_exp = np.logaddexp(0.0, eta)
        value = c * float((log1p_exp - yf * eta).sum()) + 0.5 * float(w[1:] @ w[1:])
        residual = c * (np.exp(eta - log1p_exp) - yf)
        grad = np.empty(m + 1)
        grad[0] = residual.sum()
        grad[1:] = Z.T @ residual + w[1:]
        return value, grad

    bounds = [(None, None)] + [(0.0, None) if b else (None, None) for b in bounded]
    start = np.zeros(m + 1)
    start[0] = float(np.log(max(yf.mean(), 1e-6) / max(1 - yf.mean(), 1e-6)))
    result = minimize(
        loss, start, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-12, "gtol": 1e-8},
    )  # fmt: skip
    return float(result.x[0]), result.x[1:]


@dataclass
class Scorecard:
    """Additive scorecard: logistic regression on binned signals; each signal a shape function.

    Each signal's shape is fitted as steps between its bins in priority order, and the steps
    of every signal with a catalogue direction are kept at or above zero: the shape never
    turns against the direction. Signals the policy says never lower priority are measured
    from their "none" bin; the others from the training mean.
    """

    signals: tuple[str, ...]
    binnings: tuple[Binning, ...]
    signs: tuple[int, ...] = ()
    """Per signal: +1 raises, -1 lowers, 0 undirected (from the catalogue)."""
    from_none: tuple[bool, ...] = ()
    """Per signal: contributions measured from the "none" bin (the policy's never-lowers)."""
    base_: float = 0.0
    tables_: list[np.ndarray] = field(default_factory=list)
    refit_bases_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    refit_tables_: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    c_: float = 0.0
    background_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The frozen one-hot background contributions centre on: the training mean of each
    signal's bins, or its "none" bin for a never-lowers signal."""
    family: str = "scorecard"

    @classmethod
    def for_signals(cls, signals: tuple[str, ...]) -> Scorecard:
        """An unfitted scorecard over the given signals, with the policy's constraints."""
        return cls(
            signals=signals,
            binnings=tuple(binning_for(s) for s in signals),
            signs=tuple(priority_order_sign(s) for s in signals),
            from_none=tuple(s in NEVER_LOWERS for s in signals),
        )

    @property
    def offsets(self) -> np.ndarray:
        """Where each signal's bins start in the flat one-hot layout."""
        starts: np.ndarray = np.r_[0, np.cumsum([b.n_bins for b in self.binnings])[:-1]]
        return starts

    def bin_indices(self, X: np.ndarray) -> np.ndarray:
        """Flat one-hot column of each (row, signal)."""
        cols = [b.index(X[:, j]) for j, b in enumerate(self.binnings)]
        columns: np.ndarray = np.column_stack(cols) + self.offsets
        return columns

    def _one_hot(self, X: np.ndarray) -> np.ndarray:
        idx = self.bin_indices(X)
        width = int(sum(b.n_bins for b in self.binnings))
        out = np.zeros((X.shape[0], width), dtype=np.float64)
        np.put_along_axis(out, idx, 1.0, axis=1)
        return out

    def _orders(self) -> list[np.ndarray]:
        """Each signal's bins from lowest to highest priority."""
        return [b.priority_order(sign) for b, sign in zip(self.binnings, self.signs, strict=True)]

    def _steps(self, X: np.ndarray) -> np.ndarray:
        """Step design: a column per bin above a signal's first, 1 when the row is at or past it."""
        columns = []
        for j, (binning, order) in enumerate(zip(self.binnings, self._orders(), strict=True)):
            rank = np.empty(binning.n_bins, dtype=np.intp)
            rank[order] = np.arange(binning.n_bins)
            row_rank = rank[binning.index(X[:, j])]
            columns.append(row_rank[:, None] >= np.arange(1, binning.n_bins)[None, :])
        return np.hstack(columns).astype(np.float64)

    def _bounded(self) -> np.ndarray:
        """Which step coefficients must stay at or above zero (directed signals)."""
        return np.concatenate(
            [
                np.full(b.n_bins - 1, sign != 0)
                for b, sign in zip(self.binnings, self.signs, strict=True)
            ]
        )

    def _steps_to_flat(self, steps: np.ndarray) -> np.ndarray:
        """Per-bin values (one-hot layout) from step coefficients: cumulative in priority order."""
        flat, at = [], 0
        for binning, order in zip(self.binnings, self._orders(), strict=True):
            values = np.empty(binning.n_bins)
            values[order] = np.r_[0.0, np.cumsum(steps[at : at + binning.n_bins - 1])]
            flat.append(values)
            at += binning.n_bins - 1
        return np.concatenate(flat)

    def _background(self, onehot: np.ndarray) -> np.ndarray:
        """Training mean of each bin; a never-lowers signal's background is its "none" bin."""
        background: np.ndarray = onehot.mean(axis=0)
        for start, binning, none in zip(self.offsets, self.binnings, self.from_none, strict=True):
            if none:
                background[start : start + binning.n_bins] = 0.0
                background[start] = 1.0  # bin 0: no record (count 0, or missing days)
        return background

    def _fit_tables(
        self, steps: np.ndarray, y: np.ndarray, c: float, val_onehot: np.ndarray, y_val: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Fit, then express as a base and per-signal tables centred on the background."""
        intercept, coef = _monotone_logistic(steps, y, c, self._bounded())
        flat = self._steps_to_flat(coef)
        base = intercept
        for start, b in zip(self.offsets, self.binnings, strict=True):
            sl = slice(start, start + b.n_bins)
            centre = float(flat[sl] @ self.background_[sl])
            flat[sl] -= centre
            base += centre
        raw_val = base + val_onehot @ flat
        a, scale = _platt(raw_val, y_val)
        if scale <= 0:
            raise ValueError("calibration reversed the scorecard's order: no usable signal")
        return a + scale * base, scale * flat

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        groups: np.ndarray,
        n_boot: int = 20,
        seed: int = 0,
    ) -> Scorecard:
        """Fit on train, pick regularisation and calibrate on validation, refit bootstraps."""
        steps, val_onehot = self._steps(X), self._one_hot(X_val)
        self.background_ = self._background(self._one_hot(X))
        best: tuple[float, float, float, np.ndarray] | None = None
        for c in SCORECARD_C_GRID:
            base, flat = self._fit_tables(steps, y, c, val_onehot, y_val)
            p = sigmoid(base + val_onehot @ flat)
            loss = -np.mean(y_val * np.log(p) + (1 - y_val) * np.log(1 - p))
            if best is None or loss < best[0]:
                best = (loss, c, base, flat)
        if best is None:
            raise ValueError("SCORECARD_C_GRID is empty: no regularisation to choose from")
        _, self.c_, self.base_, flat = best
        self.tables_ = self._split(flat)
        rng = np.random.default_rng(seed)
        draw = cluster_sampler(groups)
        bases, tables = [], []
        for _ in range(n_boot):
            rows = draw(rng)
            b, f = self._fit_tables(steps[rows], y[rows], self.c_, val_onehot, y_val)
            bases.append(b)
            tables.append(f)
        self.refit_bases_ = np.array(bases)
        self.refit_tables_ = np.array(tables)
        return self

    def _split(self, flat: np.ndarray) -> list[np.ndarray]:
        return [
            flat[s : s + b.n_bins].copy() for s, b in zip(self.offsets, self.binnings, strict=True)
        ]

    @property
    def flat_table_(self) -> np.ndarray:
        """All signals' tables end to end."""
        return np.concatenate(self.tables_)

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base (per row) and per-signal contributions in calibrated log-odds."""
        contrib = self.flat_table_[self.bin_indices(X)]
        return np.full(X.shape[0], self.base_), contrib

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        """Calibrated log-odds."""
        base, contrib = self.contributions(X)
        log_odds: np.ndarray = base + contrib.sum(axis=1)
        return log_odds

    def probability_range(self, X: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central interval of the bootstrap refits' probabilities."""
        idx = self.bin_indices(X)
        refits = self.refit_bases_[:, None] + self.refit_tables_[:, idx].sum(axis=2)
        q = (1 - level) / 2
        low, high = np.quantile(sigmoid(refits), [q, 1 - q], axis=0)
        return low, high

    def shape_functions(self) -> dict[str, list[tuple[str, float]]]:
        """Each signal's contribution by bin: the readable shape of its effect."""
        return {
            s: list(zip(b.labels(), map(float, t), strict=True))
            for s, b, t in zip(self.signals, self.binnings, self.tables_, strict=True)
        }


def monotonic_constraints(signals: tuple[str, ...]) -> list[int]:
    """+1 where the catalogue says a signal raises priority, -1 where it lowers it, else 0."""
    return [priority_order_sign(s) for s in signals]


def _no_record_as_long_ago(signals: tuple[str, ...], X: np.ndarray) -> np.ndarray:
    """``X`` with "no earlier record" (NaN in a days-since signal) read as very long ago."""
    columns = [j for j, s in enumerate(signals) if SIGNALS[s].aggregation is Aggregation.days_since]
    if not columns or not np.isnan(X[:, columns]).any():
        return X
    X = np.array(X, dtype=np.float64, copy=True)
    block = X[:, columns]
    X[:, columns] = np.where(np.isnan(block), NO_RECORD_DAYS, block)
    return X


CHALLENGER_CACHES = ("_tree_explainer", "_tree_shap", "_forest_main", "_forest_refits")
"""Built on first use in each process from the fitted trees; never pickled."""


@dataclass
class Challenger:
    """Shallow gradient boosting with the catalogue's monotonic constraints, Platt-calibrated.

    Contributions are TreeSHAP values in which a never-lowers signal that is not "known"
    follows its "none" value rather than the training covers: with the monotone constraints,
    that makes its contribution the gain over "none", never below zero, and still exact.
    """

    signals: tuple[str, ...]
    model_: HistGradientBoostingClassifier | None = None
    a_: float = 0.0
    b_: float = 1.0
    refits_: list[tuple[HistGradientBoostingClassifier, float, float]] = field(default_factory=list)
    family: str = "challenger"

    def _new(self, seed: int) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_depth=3,
            learning_rate=0.06,
            max_iter=250,
            l2_regularization=1.0,
            min_samples_leaf=40,
            monotonic_cst=monotonic_constraints(self.signals),
            random_state=seed,
        )

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        groups: np.ndarray,
        n_boot: int = 5,
        seed: int = 0,
    ) -> Challenger:
        """Fit on train, calibrate on validation, refit a few household bootstraps."""
        for cached in CHALLENGER_CACHES:
            self.__dict__.pop(cached, None)
        X, X_val = self._prepared(X), self._prepared(X_val)
        self.model_ = self._new(seed).fit(X, y)
        self.a_, self.b_ = _platt(self.model_.decision_function(X_val), y_val)
        rng = np.random.default_rng(seed)
        draw = cluster_sampler(groups)
        self.refits_ = []
        for i in range(n_boot):
            rows = draw(rng)
            model = self._new(seed + i + 1).fit(X[rows], y[rows])
            a, b = _platt(model.decision_function(X_val), y_val)
            self.refits_.append((model, a, b))
        return self

    def _prepared(self, X: np.ndarray) -> np.ndarray:
        """The signals as the trees read them ("no earlier record" as very long ago)."""
        return _no_record_as_long_ago(self.signals, np.asarray(X, dtype=np.float64))

    def _references(self) -> dict[int, float]:
        """Column → prepared "none" value of each never-lowers signal."""
        none = reference_values(self.signals)
        row = np.zeros((1, len(self.signals)))
        for j, value in none.items():
            row[0, j] = value
        prepared = self._prepared(row)[0]
        return {j: float(prepared[j]) for j in none}

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        """Calibrated log-odds."""
        log_odds: np.ndarray = self.a_ + self.b_ * self._raw(X)[0]
        return log_odds

    def _raw(self, X: np.ndarray, *, refits: bool = False) -> np.ndarray:
        """Raw scores of the model, or of each bootstrap refit: models x rows."""
        X = self._prepared(X)
        models = [m for m, _, _ in self.refits_] if refits else [self._fitted()]
        if X.shape[0] > SMALL_BATCH:
            return np.array([m.decision_function(X) for m in models])
        key = "_forest_refits" if refits else "_forest_main"
        if getattr(self, key, None) is None:
            setattr(self, key, Forest.of(models))
        forest: Forest = getattr(self, key)
        return forest.raw_scores(X)

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base and per-signal contributions (TreeSHAP), in calibrated log-odds."""
        X = self._prepared(X)
        tables = self._tables()
        if tables is None:
            if self._references():
                raise ValueError("the trees are too deep to measure policy signals from none")
            explainer = self._explainer()
            values = np.asarray(explainer.shap_values(X))
            expected = float(np.ravel(explainer.expected_value)[0])
        else:
            values, expected = tables.shap_values(X), tables.expected_value
        return np.full(X.shape[0], self.a_ + self.b_ * expected), self.b_ * values

    def _fitted(self) -> HistGradientBoostingClassifier:
        """The fitted model (``fit`` sets it)."""
        if self.model_ is None:
            raise ValueError("the challenger has not been fitted")
        return self.model_

    def _tables(self) -> TreeShapTables | None:
        """Tabulated TreeSHAP, built once per process (not pickled); None if trees are too deep."""
        if "_tree_shap" not in self.__dict__:
            model = self._fitted()
            self._tree_shap: TreeShapTables | None
            try:
                self._tree_shap = TreeShapTables.of(model, reference=self._references())
            except ValueError:
                self._tree_shap = None
        return self._tree_shap

    def _explainer(self) -> Any:  # a shap.TreeExplainer; shap has no type information
        """TreeSHAP for the fitted model, built once per process (not pickled)."""
        if getattr(self, "_tree_explainer", None) is None:
            import shap  # heavy; only the challenger needs it

            self._tree_explainer = shap.TreeExplainer(self.model_)
        return self._tree_explainer

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for cached in CHALLENGER_CACHES:
            state.pop(cached, None)
        return state

    def probability_range(self, X: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central interval of the bootstrap refits' probabilities."""
        raw = self._raw(X, refits=True)
        a = np.array([a for _, a, _ in self.refits_])[:, None]
        b = np.array([b for _, _, b in self.refits_])[:, None]
        refits = sigmoid(a + b * raw)
        q = (1 - level) / 2
        low, high = np.quantile(refits, [q, 1 - q], axis=0)
        return low, high
