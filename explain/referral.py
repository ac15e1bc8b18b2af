"""One stored referral explained: online features, champion score, reasons; and the what-if."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy.orm import Session

from explain.reasons import Reason, reasons_for_row
from features.online import OnlineFeatures, online_features
from models.scorer import Scorer


@dataclass(frozen=True)
class ExplainedScore:
    """A referral's score with every reason, most influential first."""

    referral_id: str
    model_version: str
    outcome_words: str
    probability: float
    probability_low: float
    probability_high: float
    band: str
    base: float
    log_odds: float
    reasons: tuple[Reason, ...]
    history_truncated: bool
    excluded_record_ids: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    """Every catalogue signal's value, inputs or not (the safety rules read the history)."""

    def top(self, n: int) -> tuple[Reason, ...]:
        """The ``n`` most influential reasons."""
        return self.reasons[:n]


def explain_features(scorer: Scorer, features: OnlineFeatures) -> ExplainedScore:
    """Score one referral's online features and turn the contributions into reasons."""
    vector = features.values
    row = np.array([[vector[name].value for name in scorer.signals]], dtype=np.float64)
    batch = scorer.score_matrix(row)
    return ExplainedScore(
        referral_id=features.referral_id,
        model_version=scorer.version,
        outcome_words=scorer.outcome_words,
        probability=float(batch.probability[0]),
        probability_low=float(batch.low[0]),
        probability_high=float(batch.high[0]),
        band=str(batch.band[0]),
        base=float(batch.base[0]),
        log_odds=float(batch.log_odds[0]),
        reasons=tuple(reasons_for_row(scorer.signals, row[0], batch.contributions[0], vector)),
        history_truncated=features.truncated,
        values=features.vector(),
    )


def explain_referral(
    session: Session,
    scorer: Scorer,
    *,
    referral_id: str,
    exclude_record_ids: Collection[str] = (),
) -> ExplainedScore:
    """Build a stored referral's features from the store, score and explain them."""
    features = online_features(
        session, referral_id=referral_id, exclude_record_ids=exclude_record_ids
    )
    explained = explain_features(scorer, features)
    return replace(explained, excluded_record_ids=tuple(sorted(set(exclude_record_ids))))


@dataclass(frozen=True)
class WhatIf:
    """A referral scored as stored and again without the records a practitioner disputes."""

    before: ExplainedScore
    after: ExplainedScore
    disputed_record_ids: tuple[str, ...]
    unknown_record_ids: tuple[str, ...]
    """Disputed IDs that are not among the records behind any signal (they changed nothing)."""

    @property
    def probability_change(self) -> float:
        """After minus before."""
        return self.after.probability - self.before.probability


def what_if(
    session: Session, scorer: Scorer, *, referral_id: str, disputed_record_ids: Collection[str]
) -> WhatIf:
    """Rescore a referral without the disputed records; deterministic for the same inputs."""
    disputed = tuple(sorted(set(disputed_record_ids)))
    before = explain_referral(session, scorer, referral_id=referral_id)
    after = explain_referral(session, scorer, referral_id=referral_id, exclude_record_ids=disputed)
    behind = {rid for reason in before.reasons for rid in reason.record_ids}
    return WhatIf(
        before=before,
        after=after,
        disputed_record_ids=disputed,
        unknown_record_ids=tuple(r for r in disputed if r not in behind),
    )
