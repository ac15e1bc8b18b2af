"""The training table: point-in-time features, the chosen outcome, splits, audit attributes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.batch import features_of
from features.catalogue import SIGNALS
from features.policy import DEFAULT_MODEL_INPUTS
from features.records import known_ms, series_to_ms
from models.splits import SplitSpec, temporal_household_split
from triage.store.extract import read_extract
from triage.vocab import OutcomeLevel, referrer_voice

OUTCOMES = {
    "plan_from_referral": "a child protection plan arising from this referral",
    "significant_harm_12m": "a child protection plan within 12 months of the referral",
    "investigated_12m": "a section 47 enquiry within 12 months of the referral",
}
"""Observed outcomes a model can be trained on, named in words wherever a score appears."""
DEFAULT_OUTCOME = "plan_from_referral"
"""The outcome of this referral itself (its highest level of intervention is a plan). "A plan
within 12 months" is also met by a plan arising from an earlier referral still being assessed,
so a model trained on it learns "a referral days after another" rather than what this one
reports (see the model card's ``label_choice``)."""
DERIVED_OUTCOMES = {"plan_from_referral": ("highest_level", OutcomeLevel.cp_plan.value)}
"""Outcomes read off another column of the outcomes table: (column, value meaning yes)."""
OPEN_CASE_DAYS = 45
"""An earlier referral this recent may still be in assessment (45 working days at most)."""
AGE_BANDS = (0, 1, 5, 11, 16, 18)
NO_RELATIONSHIP = "none recorded"


@dataclass
class TrainingData:
    """Labelled referrals with features, split, audit groups and, if synthetic, truth."""

    features: pd.DataFrame
    label: pd.Series
    split: pd.Series
    household_id: pd.Series
    received_at: pd.Series
    protected: pd.DataFrame
    """Audit groups: the child's protected attributes and age band, and whose voice referred."""
    truth: pd.Series | None
    outcome: str
    fingerprint: str
    outcomes: pd.DataFrame
    """Every observed outcome of the labelled referrals (for comparing labels)."""
    features_without_delays: pd.DataFrame | None = None
    """The features as if every event had been recorded when it occurred (what the sharing
    delays cost); None when no event was recorded after it occurred: then they are equal."""
    events_recorded_late: int = 0
    """Events of the extract recorded (``recorded_at``) after they occurred."""

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
    """Age bands for the audit: before birth, under 1, 1-4, 5-10, 11-15, 16-17, 18 or over.

    A referral can concern an unborn child or a young person of 18 or more (care leavers,
    a birthday between concern and referral); they are bands of their own, not "missing".
    """
    years = age_months / 12
    labels = ["under 1", "1-4", "5-10", "11-15", "16-17"]
    bands = pd.cut(years, bins=list(AGE_BANDS), labels=labels, right=False).astype(object)
    bands = bands.where(~(years >= AGE_BANDS[-1]), "18 or over")
    bands = bands.where(~(years < 0), "before birth")
    return bands.where(bands.notna(), "missing").astype(str)


def referrer_groups(referrals: pd.DataFrame) -> pd.DataFrame:
    """Whose voice each referral carries: referrer type, relationship and voice, as audit groups."""
    relationship = referrals["referrer_relationship"].astype(object)
    return pd.DataFrame(
        {
            "referrer_type": referrals["referrer_type"].astype(str),
            "referrer_relationship": relationship.where(relationship.notna(), NO_RELATIONSHIP),
            "referrer_voice": [
                referrer_voice(str(t), None if pd.isna(r) else str(r))
                for t, r in zip(referrals["referrer_type"], relationship, strict=True)
            ],
        },
        index=referrals.index,
    )


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
    features = features_of(world)
    occurred = series_to_ms(world.events["occurred_at"])
    late = int((known_ms(world.events, occurred) > occurred).sum())
    without_delays = None
    if late:  # the same extract with every event known when it occurred
        without_delays = features_of(world, events=world.events.drop(columns="recorded_at"))
    table = label_table(
        features,
        world.referrals,
        world.children,
        world.outcomes,
        world.truth if with_truth else None,
        outcome=outcome,
        inputs=inputs,
        spec=spec,
    )
    table.features_without_delays = (
        None if without_delays is None else without_delays.loc[table.label.index, list(inputs)]
    )
    table.events_recorded_late = late
    return table


REFERRAL_COLUMNS = (
    "referral_id",
    "child_id",
    "household_id",
    "received_at",
    "referrer_type",
    "referrer_relationship",
)
"""The referral-level columns the training table and the audit read."""
CHILD_COLUMNS = ("child_id", "ethnicity", "sex", "disability", "deprivation_decile")
"""The child's protected attributes, audited, never model inputs."""


def audit_groups(
    child: pd.DataFrame, child_age_months: pd.Series, referrals: pd.DataFrame
) -> pd.DataFrame:
    """Audit groups of aligned rows: the child's attributes, age band and the referrer's voice."""
    protected = child[list(CHILD_COLUMNS[1:])].copy()
    protected["age_band"] = age_band(child_age_months).to_numpy()
    return protected.join(referrer_groups(referrals))


def label_table(
    features: pd.DataFrame,
    referrals: pd.DataFrame,
    children: pd.DataFrame,
    outcomes: pd.DataFrame,
    truth: pd.DataFrame | None,
    *,
    outcome: str = DEFAULT_OUTCOME,
    inputs: tuple[str, ...] = DEFAULT_MODEL_INPUTS,
    spec: SplitSpec | None = None,
) -> TrainingData:
    """The training table from features (any engine's, by referral_id) and referral tables."""
    outcomes = outcomes.set_index("referral_id")
    labelled = features.index.intersection(outcomes.index)
    refs = referrals.set_index("referral_id").loc[labelled]
    label = outcome_label(outcomes.loc[labelled], outcome)
    child = children.set_index("child_id").loc[refs["child_id"]]
    child.index = labelled
    protected = audit_groups(child, features.loc[labelled, "child_age_months"], refs)
    harm = None if truth is None else truth.set_index("referral_id").loc[labelled, "harm_12m"]
    X = features.loc[labelled, list(inputs)]
    split = temporal_household_split(refs["received_at"], refs["household_id"], spec)
    return TrainingData(
        features=X,
        label=label,
        split=split,
        household_id=refs["household_id"],
        received_at=refs["received_at"],
        protected=protected,
        truth=harm.astype(bool) if harm is not None else None,
        outcome=outcome,
        fingerprint=fingerprint(X, label),
        outcomes=outcomes.loc[labelled],
    )


def outcome_columns(outcome: str) -> list[str]:
    """The outcomes table's columns that one outcome is read or derived from."""
    return [DERIVED_OUTCOMES[outcome][0] if outcome in DERIVED_OUTCOMES else outcome]


def load_audit_data(
    directory: Path,
    features: pd.DataFrame,
    *,
    outcome: str = DEFAULT_OUTCOME,
    inputs: tuple[str, ...] = DEFAULT_MODEL_INPUTS,
    spec: SplitSpec | None = None,
) -> TrainingData:
    """The training table from an engine's features and the referral-level tables only.

    No events are read (they are what outgrows memory at national size), and of the
    referral, child, outcome and truth tables only the columns the table needs.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")

    def read(table: str, columns: list[str]) -> pd.DataFrame:
        return pd.read_parquet(directory / f"{table}.parquet", columns=columns)

    truth_path = directory / "truth.parquet"
    return label_table(
        features,
        read("referrals", list(REFERRAL_COLUMNS)),
        read("children", list(CHILD_COLUMNS)),
        read("outcomes", ["referral_id", *outcome_columns(outcome)]),
        read("truth", ["referral_id", "harm_12m"]) if truth_path.exists() else None,
        outcome=outcome,
        inputs=inputs,
        spec=spec,
    )


def outcome_label(outcomes: pd.DataFrame, outcome: str) -> pd.Series:
    """The chosen outcome as booleans, read or derived from the outcomes table."""
    if outcome in DERIVED_OUTCOMES:
        column, yes = DERIVED_OUTCOMES[outcome]
        return outcomes[column].eq(yes)
    return outcomes[outcome].astype(bool)


def as_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Features as a float64 matrix (NaN kept for missing values)."""
    return frame.to_numpy(dtype=np.float64)
