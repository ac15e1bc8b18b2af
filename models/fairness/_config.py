"""What an audit can be told: capacities, tolerances, reference groups, verdict names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from models.fairness._groups import ATTRIBUTES, INTERSECTIONS

CAPACITIES = (0.05, 0.10, 0.20, 0.30, 0.50)


QUEUE_RATES = ("selection_rate", "precision", "fpr", "fnr", "fdr", "for")


SCORE_METRICS = (
    "base_rate",
    "mean_score",
    "calibration_gap",
    "auc",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
)


WITHIN, DISPARITY, INSUFFICIENT = "within tolerance", "disparity", "insufficient evidence"


VERDICTS = (WITHIN, DISPARITY, INSUFFICIENT)


TOLERANCE_VERSION = "fairness-tolerance/1"


DEFAULT_TOLERANCES: Mapping[str, float] = {
    **dict.fromkeys(QUEUE_RATES, 0.05),
    "base_rate": 0.05,
    "mean_score": 0.05,
    "calibration_gap": 0.05,
    "auc": 0.05,
    "brier": 0.02,
    "ece": 0.03,
    "calibration_slope": 0.2,
    "calibration_intercept": 0.2,
}
"""Largest absolute difference from the reference group that counts as no material disparity.

Rates and scores are on the probability scale (0.05 is five percentage points, the same size
as the training gate on calibration gaps); slope and intercept are on the logistic scale.
"""


LABEL_FREE = ("mean_score", "selection_rate")
"""Metrics that do not depend on the label: shown and judged once, under the first label."""


SHIFTED = ("auc", "calibration_slope", "calibration_intercept")
"""Metrics computed approximately on the bootstrap cells; replicates are shifted to exact."""


ECE_MIN_SIZE = 200
"""ECE differences are judged only for groups at least this large (ECE is biased when small)."""


HUMAN_TOLERANCE = 0.05


ESCALATING = ("assessment", "strategy_discussion", "immediate_protection")
"""Front-door decisions that take a referral further (the human counterpart of "selected")."""


HIGH_BANDS = ("Review first", "Elevated")


@dataclass(frozen=True)
class ReferenceGroups:
    """The explicit, versioned reference group of each grouping; unlisted ones use the largest."""

    version: str = "reference/1-largest"
    groups: Mapping[str, str] = field(default_factory=dict)

    def choose(self, grouping: str, labels: Sequence[str], counts: np.ndarray) -> tuple[int, str]:
        """Index of the reference group and the rule that chose it."""
        if grouping in self.groups:
            wanted = self.groups[grouping]
            if wanted not in labels:
                raise ValueError(f"reference group {wanted!r} of {grouping!r} has no rows")
            return list(labels).index(wanted), "explicit"
        # Largest group; ties go to the first label in sorted order so the choice is stable.
        return int(np.argmax(counts)), "largest"


@dataclass(frozen=True)
class AuditConfig:
    """Everything an audit can be told."""

    capacities: tuple[float, ...] = CAPACITIES
    attributes: tuple[str, ...] = ATTRIBUTES
    intersections: tuple[tuple[str, ...], ...] = INTERSECTIONS
    min_size: int = 50
    """Groups with fewer referrals are suppressed: listed, never shown, never tested."""
    n_boot: int = 1000
    level: float = 0.95
    alpha: float = 0.05
    correction: Literal["holm", "bh"] = "holm"
    tolerances: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    references: ReferenceGroups = field(default_factory=ReferenceGroups)
    n_bins: int = 10
    n_cells: int = 64
    """Score quantile cells for the bootstrap grid (capacity and bin edges are added)."""
    calibration_blocks: int = 16
    bootstrap: Literal["auto", "stratified", "household"] = "auto"
    """'household' reweights whole households (Poisson weights): siblings share attributes and
    outcomes, so within-group row resampling understates uncertainty. Its cost grows with
    rows; rate comparisons then use effective counts (counts over the design effect), human
    decisions a cluster-robust design effect. 'stratified' treats referrals as independent.
    'auto' (the default) is household when household IDs are given, else stratified."""
    seed: int = 0
    chunk: int = 50
