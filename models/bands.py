"""Bands: the words a practitioner sees instead of a bare number, versioned with the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

BAND_NAMES = ("Review first", "Elevated", "Standard", "Lower")
BAND_CAPACITIES = (0.05, 0.20, 0.60)
"""Cumulative share of validation referrals above each threshold: top 5%, next 15%, next 40%."""


@dataclass(frozen=True)
class Bands:
    """Probability thresholds, highest first; a score at or above a threshold takes its band."""

    thresholds: tuple[float, ...]
    names: tuple[str, ...] = BAND_NAMES

    @classmethod
    def from_scores(
        cls, probabilities: np.ndarray, capacities: tuple[float, ...] = BAND_CAPACITIES
    ) -> Bands:
        """Thresholds at the given queue capacities of held-out scores."""
        quantiles = np.quantile(probabilities, [1 - c for c in capacities])
        return cls(thresholds=tuple(float(q) for q in quantiles))

    def assign(self, probabilities: ArrayLike) -> np.ndarray:
        """Band name of each probability."""
        descending = -np.asarray(self.thresholds)
        index = np.searchsorted(descending, -np.asarray(probabilities), side="left")
        return np.asarray(self.names, dtype=object)[index]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the model card and the API."""
        return {
            "names": list(self.names),
            "thresholds": list(self.thresholds),
            "rule": "a probability at or above a threshold takes that band; below the last, Lower",
        }
