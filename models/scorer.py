"""The scorer the service loads: probability, range, band and exact per-signal contributions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.bands import Bands
from models.families import Challenger, Scorecard, sigmoid


@dataclass(frozen=True)
class ScoreBatch:
    """Scores for a batch of referrals, in input order."""

    probability: np.ndarray
    low: np.ndarray
    high: np.ndarray
    band: np.ndarray
    base: np.ndarray
    contributions: np.ndarray
    """Referral x signal in calibrated log-odds; ``base + contributions.sum(1)`` is the log-odds."""

    @property
    def log_odds(self) -> np.ndarray:
        """Calibrated log-odds."""
        log_odds: np.ndarray = self.base + self.contributions.sum(axis=1)
        return log_odds


@dataclass
class Scorer:
    """A fitted model family with its bands and what it predicts, as registered."""

    model: Scorecard | Challenger
    bands: Bands
    signals: tuple[str, ...]
    outcome: str
    outcome_words: str
    catalogue_version: str
    data_fingerprint: str
    version: str = "unregistered"

    @property
    def family(self) -> str:
        """``scorecard`` or ``challenger``."""
        return self.model.family

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The model's input columns, in order, as float64 (missing signals are an error)."""
        missing = [s for s in self.signals if s not in features.columns]
        if missing:
            raise KeyError(f"features lack signals the model needs: {missing}")
        return features[list(self.signals)].to_numpy(dtype=np.float64)

    def score_matrix(self, X: np.ndarray, *, with_range: bool = True) -> ScoreBatch:
        """Score rows already in ``signals`` order (the numpy hot path)."""
        base, contributions = self.model.contributions(X)
        probability = sigmoid(base + contributions.sum(axis=1))
        if with_range:
            low, high = self.model.probability_range(X)
            low, high = np.minimum(low, probability), np.maximum(high, probability)
        else:
            low = high = np.full(probability.size, np.nan)
        return ScoreBatch(
            probability, low, high, self.bands.assign(probability), base, contributions
        )

    def score(self, features: pd.DataFrame, *, with_range: bool = True) -> ScoreBatch:
        """Score a feature table."""
        return self.score_matrix(self.matrix(features), with_range=with_range)
