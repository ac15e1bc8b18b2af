"""Model scores of referrals: ``add_score`` through the ORM, ``insert_score`` as Core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store.statements import session_connection
from triage.store.tables import ScoreRow, table_of, utcnow


def add_score(
    session: Session,
    *,
    referral_id: str,
    model_version: str,
    probability: float,
    probability_low: float,
    probability_high: float,
    band: str,
    flags: Sequence[str] = (),
    reasons: Sequence[Any] = (),
    scored_at: datetime | None = None,
) -> ScoreRow:
    """Store a model score for a referral."""
    row = ScoreRow(
        referral_id=referral_id,
        scored_at=scored_at or utcnow(),
        model_version=model_version,
        probability=probability,
        probability_low=probability_low,
        probability_high=probability_high,
        band=band,
        flags=list(flags),
        reasons=list(reasons),
    )
    session.add(row)
    session.flush()
    return row


_INSERT_SCORE = table_of(ScoreRow).insert()


def insert_score(session: Session, *, score: Mapping[str, Any]) -> int:
    """Store a model score without the ORM (every column but ``id``); return its id."""
    result = session_connection(session).execute(_INSERT_SCORE, dict(score))
    (score_id,) = result.inserted_primary_key  # type: ignore[misc]
    return int(score_id)


def latest_score(session: Session, *, referral_id: str) -> ScoreRow | None:
    """Return the most recent score of a referral, or None."""
    return session.scalars(
        select(ScoreRow)
        .where(ScoreRow.referral_id == referral_id)
        .order_by(ScoreRow.scored_at.desc(), ScoreRow.id.desc())
        .limit(1)
    ).first()


def latest_scores(session: Session, *, referral_ids: Sequence[str]) -> dict[str, ScoreRow]:
    """The most recent score of each of these referrals that has one."""
    latest: dict[str, ScoreRow] = {}
    if not referral_ids:
        return latest
    query = (
        select(ScoreRow)
        .where(ScoreRow.referral_id.in_(referral_ids))
        .order_by(ScoreRow.referral_id, ScoreRow.scored_at.desc(), ScoreRow.id.desc())
    )
    for score in session.scalars(query):
        latest.setdefault(score.referral_id, score)
    return latest
