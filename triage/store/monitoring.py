"""What monitoring reads from the store (referrals since a moment, their latest score, decision
and outcome) and the summaries of its runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store.tables import (
    ChildRow,
    DecisionRow,
    MonitoringReportRow,
    OutcomeRow,
    ReferralRow,
    ScoreRow,
)

CHUNK = 500


@dataclass(frozen=True)
class MonitoredReferral:
    """A referral as monitoring sees it: when, who referred, the child's audit groups, its
    latest score's probability and input values, its latest agreement and its outcome."""

    referral_id: str
    received_at: datetime
    referrer_type: str
    referrer_relationship: str | None
    date_of_birth: date
    sex: str
    ethnicity: str
    disability: bool
    deprivation_decile: int | None
    probability: float | None = None
    model_version: str | None = None
    values: Mapping[str, float | None] | None = None
    agreement: str | None = None
    outcome: Mapping[str, Any] | None = None


def monitored_referrals(session: Session, *, since: datetime) -> list[MonitoredReferral]:
    """Referrals received at or after ``since`` with their latest score, agreement and outcome."""
    rows = session.execute(
        select(
            ReferralRow.referral_id,
            ReferralRow.received_at,
            ReferralRow.referrer_type,
            ReferralRow.referrer_relationship,
            ChildRow.date_of_birth,
            ChildRow.sex,
            ChildRow.ethnicity,
            ChildRow.disability,
            ChildRow.deprivation_decile,
        )
        .join(ChildRow, ChildRow.child_id == ReferralRow.child_id)
        .where(ReferralRow.received_at >= since)
        .order_by(ReferralRow.received_at, ReferralRow.referral_id)
    ).all()
    ids = [r.referral_id for r in rows]
    scores: dict[str, tuple[float, str, dict[str, float | None]]] = {}
    agreements: dict[str, str] = {}
    outcomes: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for referral_id, probability, version, reasons in session.execute(
            select(ScoreRow.referral_id, ScoreRow.probability, ScoreRow.model_version,
                   ScoreRow.reasons)
            .where(ScoreRow.referral_id.in_(chunk))
            .order_by(ScoreRow.scored_at, ScoreRow.id)
        ):  # fmt: skip
            values = {r["signal"]: r.get("value") for r in reasons if isinstance(r, dict)}
            scores[referral_id] = (probability, version, values)  # the latest wins
        for referral_id, agreement in session.execute(
            select(DecisionRow.referral_id, DecisionRow.agreement)
            .where(DecisionRow.referral_id.in_(chunk), DecisionRow.agreement.is_not(None))
            .order_by(DecisionRow.decided_at, DecisionRow.id)
        ):
            agreements[referral_id] = agreement or ""
        for outcome in session.scalars(select(OutcomeRow).where(OutcomeRow.referral_id.in_(chunk))):
            outcomes[outcome.referral_id] = {
                "highest_level": outcome.highest_level,
                "investigated_12m": outcome.investigated_12m,
                "significant_harm_12m": outcome.significant_harm_12m,
            }
    out = []
    for r in rows:
        score = scores.get(r.referral_id)
        out.append(
            MonitoredReferral(
                referral_id=r.referral_id,
                received_at=r.received_at,
                referrer_type=r.referrer_type,
                referrer_relationship=r.referrer_relationship,
                date_of_birth=r.date_of_birth,
                sex=r.sex,
                ethnicity=r.ethnicity,
                disability=bool(r.disability),
                deprivation_decile=r.deprivation_decile,
                probability=None if score is None else score[0],
                model_version=None if score is None else score[1],
                values=None if score is None else score[2],
                agreement=agreements.get(r.referral_id),
                outcome=outcomes.get(r.referral_id),
            )
        )
    return out


def add_monitoring_report(
    session: Session,
    *,
    generated_at: datetime,
    source: str,
    model_version: str | None,
    alerts: int,
    summary: Mapping[str, Any],
) -> MonitoringReportRow:
    """Store a monitoring run's summary."""
    row = MonitoringReportRow(
        generated_at=generated_at,
        source=source,
        model_version=model_version,
        alerts=alerts,
        summary=dict(summary),
    )
    session.add(row)
    session.flush()
    return row


def latest_monitoring_report(
    session: Session, *, source: str | None = None
) -> MonitoringReportRow | None:
    """The newest monitoring run's summary (of one source, if given), or None."""
    query = select(MonitoringReportRow)
    if source is not None:
        query = query.where(MonitoringReportRow.source == source)
    return session.scalars(
        query.order_by(MonitoringReportRow.generated_at.desc(), MonitoringReportRow.id.desc())
    ).first()
