"""Two interpretable model families behind one interface, calibrated, with uncertainty.

Both return per-signal contributions that add up exactly to the calibrated log-odds:
calibration is Platt scaling (``a + b * log-odds``), which is linear in the log-odds, so the
contributions scale by ``b`` and the base absorbs ``a``. Isotonic calibration would break
that additivity, which is why it is not used.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from features.catalogue import SIGNALS, Aggregation, Direction
from models.evaluation import cluster_sampler
from models.forest import SMALL_BATCH, Forest
from models.treeshap import TreeShapTables

COUNT_EDGES = (1.0, 2.0, 3.0, 5.0)
AGE_EDGES = (6.0, 12.0, 24.0, 60.0, 132.0, 192.0)
DAYS_EDGES = (30.0, 90.0, 365.0, 730.0)
SCORECARD_C_GRID = (0.05, 0.2, 1.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Probability from log-odds."""
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds from probability, clipped away from 0 and 1."""
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


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
        idx = np.searchsorted(np.asarray(self.edges), values, side="right") + int(self.missing_bin)
        if self.missing_bin:
            idx = np.where(np.isnan(values), 0, idx)
        return idx

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


@dataclass
class Scorecard:
    """Additive scorecard: logistic regression on binned signals; each signal a shape function."""

    signals: tuple[str, ...]
    binnings: tuple[Binning, ...]
    base_: float = 0.0
    tables_: list[np.ndarray] = field(default_factory=list)
    refit_bases_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    refit_tables_: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    c_: float = 0.0
    background_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Mean one-hot encoding of the training rows: the frozen background contributions centre on."""
    family: str = "scorecard"

    @classmethod
    def for_signals(cls, signals: tuple[str, ...]) -> Scorecard:
        """An unfitted scorecard over the given signals."""
        return cls(signals=signals, binnings=tuple(binning_for(s) for s in signals))

    @property
    def offsets(self) -> np.ndarray:
        """Where each signal's bins start in the flat one-hot layout."""
        return np.r_[0, np.cumsum([b.n_bins for b in self.binnings])[:-1]]

    def bin_indices(self, X: np.ndarray) -> np.ndarray:
        """Flat one-hot column of each (row, signal)."""
        cols = [b.index(X[:, j]) for j, b in enumerate(self.binnings)]
        return np.column_stack(cols) + self.offsets

    def _one_hot(self, X: np.ndarray) -> np.ndarray:
        idx = self.bin_indices(X)
        width = int(sum(b.n_bins for b in self.binnings))
        out = np.zeros((X.shape[0], width), dtype=np.float64)
        np.put_along_axis(out, idx, 1.0, axis=1)
        return out

    def _fit_tables(self, onehot: np.ndarray, y: np.ndarray, c: float, val_onehot, y_val):
        """Fit, then express as a base and per-signal tables centred on the training mean."""
        model = LogisticRegression(C=c, max_iter=2000).fit(onehot, y)
        coef = model.coef_[0]
        mean = self.background_ if self.background_.size else onehot.mean(axis=0)
        flat = coef.copy()
        base = float(model.intercept_[0])
        for start, b in zip(self.offsets, self.binnings, strict=True):
            sl = slice(start, start + b.n_bins)
            centre = float(coef[sl] @ mean[sl])
            flat[sl] = coef[sl] - centre
            base += centre
        raw_val = base + val_onehot @ flat
        a, scale = _platt(raw_val, y_val)
        return a + scale * base, scale * flat

    def fit(self, X, y, X_val, y_val, *, groups, n_boot: int = 20, seed: int = 0) -> Scorecard:
        """Fit on train, pick regularisation and calibrate on validation, refit bootstraps."""
        onehot, val_onehot = self._one_hot(X), self._one_hot(X_val)
        self.background_ = onehot.mean(axis=0)
        best = None
        for c in SCORECARD_C_GRID:
            base, flat = self._fit_tables(onehot, y, c, val_onehot, y_val)
            p = sigmoid(base + val_onehot @ flat)
            loss = -np.mean(y_val * np.log(p) + (1 - y_val) * np.log(1 - p))
            if best is None or loss < best[0]:
                best = (loss, c, base, flat)
        _, self.c_, self.base_, flat = best
        self.tables_ = self._split(flat)
        rng = np.random.default_rng(seed)
        draw = cluster_sampler(groups)
        bases, tables = [], []
        for _ in range(n_boot):
            rows = draw(rng)
            b, f = self._fit_tables(onehot[rows], y[rows], self.c_, val_onehot, y_val)
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
        return base + contrib.sum(axis=1)

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
    sign = {Direction.raises: 1, Direction.lowers: -1}
    return [sign.get(SIGNALS[s].direction, 0) for s in signals]


CHALLENGER_CACHES = ("_tree_explainer", "_tree_shap", "_forest_main", "_forest_refits")
"""Built on first use in each process from the fitted trees; never pickled."""


@dataclass
class Challenger:
    """Shallow gradient boosting with the catalogue's monotonic constraints, Platt-calibrated."""

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

    def fit(self, X, y, X_val, y_val, *, groups, n_boot: int = 5, seed: int = 0) -> Challenger:
        """Fit on train, calibrate on validation, refit a few household bootstraps."""
        for cached in CHALLENGER_CACHES:
            self.__dict__.pop(cached, None)
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

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        """Calibrated log-odds."""
        return self.a_ + self.b_ * self._raw(X)[0]

    def _raw(self, X: np.ndarray, *, refits: bool = False) -> np.ndarray:
        """Raw scores of the model, or of each bootstrap refit: models x rows."""
        models = [m for m, _, _ in self.refits_] if refits else [self.model_]
        if X.shape[0] > SMALL_BATCH:
            return np.array([m.decision_function(X) for m in models])
        key = "_forest_refits" if refits else "_forest_main"
        if getattr(self, key, None) is None:
            setattr(self, key, Forest.of(models))
        return getattr(self, key).raw_scores(X)

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base and per-signal contributions (TreeSHAP), in calibrated log-odds."""
        tables = self._tables()
        if tables is None:
            explainer = self._explainer()
            values = np.asarray(explainer.shap_values(X))
            expected = float(np.ravel(explainer.expected_value)[0])
        else:
            values, expected = tables.shap_values(X), tables.expected_value
        return np.full(X.shape[0], self.a_ + self.b_ * expected), self.b_ * values

    def _tables(self) -> TreeShapTables | None:
        """Tabulated TreeSHAP, built once per process (not pickled); None if trees are too deep."""
        if "_tree_shap" not in self.__dict__:
            try:
                self._tree_shap = TreeShapTables.of(self.model_)
            except ValueError:
                self._tree_shap = None
        return self._tree_shap

    def _explainer(self):
        """TreeSHAP for the fitted model, built once per process (not pickled)."""
        if getattr(self, "_tree_explainer", None) is None:
            import shap  # heavy; only the challenger needs it

            self._tree_explainer = shap.TreeExplainer(self.model_)
        return self._tree_explainer

    def __getstate__(self) -> dict:
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
