"""Monitoring rows from an extract: batch features scored by a model (a back-test of a world)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.batch import build_features
from models.dataset import age_band, outcome_label, referrer_groups
from models.fairness import audit_attributes
from models.monitoring._config import MonitorData
from models.scorer import Scorer
from triage.store.extract import read_extract

GROUPINGS = ("referrer_type", "referrer_voice", "age_band", "sex", "ethnicity", "deprivation_band")
"""The groups monitored by month: whose voice referred first, then the audit's attributes."""


def extract_data(directory: Path, scorer: Scorer) -> MonitorData:
    """Every referral of the extract with the model's inputs, score and observed outcome.

    Extracts carry historic decisions without an agreement with any band, so the human
    agreement section stays empty for them.
    """
    world = read_extract(Path(directory), with_truth=False)
    features = build_features(
        world.children,
        world.referrals,
        world.events,
        world.decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )
    referrals = world.referrals.set_index("referral_id").loc[features.index]
    probability = scorer.score_matrix(scorer.matrix(features), with_range=False).probability
    outcomes = world.outcomes.set_index("referral_id")
    label = pd.Series(np.nan, index=features.index)
    known = features.index.intersection(outcomes.index)
    label.loc[known] = outcome_label(outcomes.loc[known], scorer.outcome).astype(float)
    children = world.children.set_index("child_id").loc[referrals["child_id"]]
    protected = children[["ethnicity", "sex", "disability", "deprivation_decile"]]
    protected.index = features.index
    protected = protected.assign(age_band=age_band(features["child_age_months"]))
    groups = audit_attributes(protected.join(referrer_groups(referrals)))
    return MonitorData(
        received_at=referrals["received_at"],
        signals=features[list(scorer.signals)],
        probability=pd.Series(probability, index=features.index),
        label=label,
        agreement=pd.Series(None, index=features.index, dtype=object),
        groups=groups[[g for g in GROUPINGS if g in groups.columns]],
    )
