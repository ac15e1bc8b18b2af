"""How much of a ranking an already-open case explains, for the chosen label and the others.

"A child protection plan within 12 months" is met by a plan that arises from an earlier
referral still being assessed: a referral made days after another then counts as positive
whatever it reports, and "the last referral was 8 days ago" becomes the strongest reason. The
default label is this referral's own outcome (``plan_from_referral``). Every training run
measures, on the test period, what an open case (an earlier referral within
``OPEN_CASE_DAYS``) accounts for under each observed label, so the model card can show the
choice and its consequences with figures from the run itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.dataset import OPEN_CASE_DAYS, OUTCOMES, TrainingData, outcome_label
from models.evaluation import auc
from models.splits import TEST

DAYS_SINCE = "days_since_last_referral"


def open_case(features: pd.DataFrame) -> np.ndarray:
    """Whether each referral follows an earlier one about the child within ``OPEN_CASE_DAYS``."""
    days = features[DAYS_SINCE].to_numpy(dtype=np.float64)
    follows: np.ndarray = ~np.isnan(days) & (days <= OPEN_CASE_DAYS)
    return follows


def _recency_score(features: pd.DataFrame) -> np.ndarray:
    """A ranking by recency alone: sooner after an earlier referral ranks higher; none lowest."""
    days = features[DAYS_SINCE].to_numpy(dtype=np.float64)
    return np.where(np.isnan(days), 0.0, 1.0 / (1.0 + np.maximum(days, 0.0)))


def _rounded(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def label_choice(data: TrainingData, probability: np.ndarray) -> dict[str, Any]:
    """Open-case shares and AUCs on the test period, for every observed label in the extract.

    ``probability`` is the chosen model's score of the test period, in ``data.part(TEST)``
    order. The AUCs under a label other than the one trained on say how the same ranking
    reads against it; "recency alone" ranks by days since the last referral and nothing else.
    """
    ids = data.part(TEST)
    features = data.features.loc[ids]
    if DAYS_SINCE not in features:
        return {"chosen": data.outcome, "open_case_days": OPEN_CASE_DAYS, "labels": {}}
    opened = open_case(features)
    top = probability >= np.quantile(probability, 0.9)
    recency = _recency_score(features)
    labels = {}
    for name in OUTCOMES:
        try:
            y = outcome_label(data.outcomes.loc[ids], name).to_numpy(dtype=np.float64)
        except KeyError:
            continue
        labels[name] = {
            "words": OUTCOMES[name],
            "base_rate": _rounded(y.mean()),
            "positives_on_an_open_case": _rounded(opened[y == 1].mean()),
            "auc": _rounded(auc(y, probability)),
            "auc_without_open_cases": _rounded(auc(y[~opened], probability[~opened])),
            "auc_recency_alone": _rounded(auc(y, recency)),
        }
    return {
        "chosen": data.outcome,
        "open_case_days": OPEN_CASE_DAYS,
        "test_referrals_on_an_open_case": _rounded(opened.mean()),
        "top_tenth_on_an_open_case": _rounded(opened[top].mean()),
        "labels": labels,
    }
