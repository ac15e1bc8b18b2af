"""The training table: point-in-time features, the chosen outcome, splits, audit attributes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.batch import build_features
from features.catalogue import DEFAULT_MODEL_INPUTS, SIGNALS
from models.splits import SplitSpec, temporal_household_split
from triage.synth.extract import read_extract

OUTCOMES = {
    "significant_harm_12m": "a child protection plan within 12 months of the referral",
    "investigated_12m": "a section 47 enquiry within 12 months of the referral",
}
"""Observed outcomes a model can be trained on, named in words wherever a score appears."""
DEFAULT_OUTCOME = "significant_harm_12m"
AGE_BANDS = (0, 1, 5, 11, 16, 18)


@dataclass
class TrainingData:
    """Labelled referrals with features, split, protected attributes and, if synthetic, truth."""

    features: pd.DataFrame
    label: pd.Series
    split: pd.Series
    household_id: pd.Series
    received_at: pd.Series
    protected: pd.DataFrame
    truth: pd.Series | None
    outcome: str
    fingerprint: str

    def part(self, name: str) -> pd.Index:
        """Referral IDs in one partition."""
        return self.split.index[self.split == name]


def fingerprint(features: pd.DataFrame, label: pd.Series) -> str:
    """A SHA-256 of the training table's content (features, label, index)."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(features, index=True).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(label, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def age_band(age_months: pd.Series) -> pd.Series:
    """Age bands for the audit: under 1, 1-4, 5-10, 11-15, 16-17."""
    years = age_months / 12
    labels = ["under 1", "1-4", "5-10", "11-15", "16-17"]
    return pd.cut(years, bins=list(AGE_BANDS), labels=labels, right=False).astype(str)


def load_training_data(
    directory: Path,
    *,
    outcome: str = DEFAULT_OUTCOME,
    inputs: tuple[str, ...] = DEFAULT_MODEL_INPUTS,
    spec: SplitSpec | None = None,
) -> TrainingData:
    """Build the training table from an extract directory."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    unknown = [name for name in inputs if name not in SIGNALS]
    if unknown:
        raise ValueError(f"unknown signals: {unknown}")
    with_truth = (directory / "truth.parquet").exists()
    world = read_extract(directory, with_truth=with_truth)
    features = build_features(world.children, world.referrals, world.events, world.decisions)
    outcomes = world.outcomes.set_index("referral_id")
    labelled = features.index.intersection(outcomes.index)
    refs = world.referrals.set_index("referral_id").loc[labelled]
    label = outcomes.loc[labelled, outcome].astype(bool)
    children = world.children.set_index("child_id")
    protected = children.loc[
        refs["child_id"], ["ethnicity", "sex", "disability", "deprivation_decile"]
    ]
    protected.index = labelled
    protected["age_band"] = age_band(features.loc[labelled, "child_age_months"])
    truth = world.truth.set_index("referral_id").loc[labelled, "harm_12m"] if with_truth else None
    X = features.loc[labelled, list(inputs)]
    split = temporal_household_split(refs["received_at"], refs["household_id"], spec)
    return TrainingData(
        features=X,
        label=label,
        split=split,
        household_id=refs["household_id"],
        received_at=refs["received_at"],
        protected=protected,
        truth=truth.astype(bool) if truth is not None else None,
        outcome=outcome,
        fingerprint=fingerprint(X, label),
    )


def as_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Features as a float64 matrix (NaN kept for missing values)."""
    return frame.to_numpy(dtype=np.float64)
