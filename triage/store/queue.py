"""The review queue: one entry per open referral, kept in queue order.

``save_queue_entry`` works through the ORM; ``insert_queue_entry``, ``insert_queue_entries_if_new``
and ``upsert_queue_entry`` are Core statements for the intake and scoring paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, literal, or_, select, tuple_, update
from sqlalchemy.orm import Session

from triage.store.statements import insert_if_new_statement, session_connection
from triage.store.tables import QueueEntryRow, ReferralRow, table_of, utcnow


def get_queue_entry(session: Session, *, referral_id: str) -> QueueEntryRow | None:
    """Return an open referral's queue entry, or None."""
    return session.get(QueueEntryRow, referral_id)


def queue_model_version(session: Session, *, referral_id: str) -> str | None:
    """The model version of a queue entry's score (None: unscored or not queued), row-locked."""
    return session.scalar(
        select(QueueEntryRow.model_version)
        .where(QueueEntryRow.referral_id == referral_id)
        .with_for_update()
    )


def save_queue_entry(session: Session, *, entry: Mapping[str, Any]) -> QueueEntryRow:
    """Insert or replace a referral's queue entry."""
    row = session.get(QueueEntryRow, entry["referral_id"])
    if row is None:
        row = QueueEntryRow(**entry)
        session.add(row)
    else:
        for name, value in entry.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
    session.flush()
    return row


_INSERT_QUEUE_ENTRY = table_of(QueueEntryRow).insert()
_UPDATE_QUEUE_ENTRY = update(table_of(QueueEntryRow)).where(
    table_of(QueueEntryRow).c.referral_id == bindparam("b_referral_id")
)


def insert_queue_entry(session: Session, *, entry: Mapping[str, Any]) -> None:
    """Queue a referral that has no entry, without the ORM."""
    session_connection(session).execute(_INSERT_QUEUE_ENTRY, dict(entry))


def insert_queue_entries_if_new(session: Session, *, entries: Sequence[Mapping[str, Any]]) -> None:
    """Queue referrals in one executemany; one queued meanwhile (another worker) keeps its entry."""
    if entries:
        connection = session_connection(session)
        statement = insert_if_new_statement(connection, table_of(QueueEntryRow), returning=False)
        connection.execute(statement, [dict(e) for e in entries])


def upsert_queue_entry(session: Session, *, entry: Mapping[str, Any]) -> None:
    """``save_queue_entry`` without the ORM: update the referral's entry, or insert it."""
    values = {"updated_at": utcnow(), **entry}
    updated = session_connection(session).execute(
        _UPDATE_QUEUE_ENTRY, {**values, "b_referral_id": entry["referral_id"]}
    )
    if updated.rowcount != 1:
        insert_queue_entry(session, entry=values)


def remove_queue_entry(session: Session, *, referral_id: str) -> None:
    """Take a referral out of the queue."""
    session.execute(delete(QueueEntryRow).where(QueueEntryRow.referral_id == referral_id))


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Queue filters; None means no filter."""

    bands: tuple[str, ...] = ()
    concerns: tuple[str, ...] = ()
    min_age_months: int | None = None
    max_age_months: int | None = None
    received_before: datetime | None = None


QUEUE_ORDER = (
    QueueEntryRow.tier,
    QueueEntryRow.rank_at,
    QueueEntryRow.sort_probability,
    QueueEntryRow.referral_id,
)
"""The columns the queue is ordered by (``triage.queue.queue_sort_key``), ascending."""


def queue_key(entry: QueueEntryRow) -> tuple[int, datetime, float, str]:
    """An entry's position in the queue order."""
    return (entry.tier, entry.rank_at, entry.sort_probability, entry.referral_id)


def open_entries_of_children(session: Session, *, child_ids: Sequence[str]) -> list[QueueEntryRow]:
    """Every queue entry of these children, in queue order."""
    if not child_ids:
        return []
    query = select(QueueEntryRow).where(QueueEntryRow.child_id.in_(sorted(set(child_ids))))
    return list(session.scalars(query.order_by(*QUEUE_ORDER)))


def queue_conditions(filters: QueueFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses that select the queue entries ``filters`` asks for."""
    conditions: list[ColumnElement[bool]] = []
    if filters.bands:
        conditions.append(QueueEntryRow.band.in_(filters.bands))
    if filters.concerns:
        conditions.append(
            or_(*(QueueEntryRow.concerns_key.contains(f";{c};") for c in filters.concerns))
        )
    if filters.min_age_months is not None:
        conditions.append(QueueEntryRow.age_months >= filters.min_age_months)
    if filters.max_age_months is not None:
        conditions.append(QueueEntryRow.age_months <= filters.max_age_months)
    if filters.received_before is not None:
        conditions.append(QueueEntryRow.received_at <= filters.received_before)
    return conditions


def queue_page(
    session: Session,
    *,
    filters: QueueFilter = QueueFilter(),
    after: tuple[int, datetime, float, str] | None = None,
    limit: int = 50,
) -> list[QueueEntryRow]:
    """Return up to ``limit`` queue entries in queue order, strictly after the ``after`` key."""
    key = QUEUE_ORDER
    query = select(QueueEntryRow).where(*queue_conditions(filters))
    if after is not None:
        bound = (literal(value, column.type) for value, column in zip(after, key, strict=True))
        query = query.where(tuple_(*key) > tuple_(*bound))
    return list(session.scalars(query.order_by(*key).limit(limit)))


def open_referrals_missing_from_queue(session: Session, *, limit: int = 1000) -> list[ReferralRow]:
    """Open referrals with no queue entry (e.g. loaded from an extract), oldest first."""
    query = (
        select(ReferralRow)
        .outerjoin(QueueEntryRow, QueueEntryRow.referral_id == ReferralRow.referral_id)
        .where(ReferralRow.status == "open", QueueEntryRow.referral_id.is_(None))
        .order_by(ReferralRow.received_at, ReferralRow.referral_id)
        .limit(limit)
    )
    return list(session.scalars(query))


def queue_entries_to_score(session: Session, *, model_version: str, limit: int = 1000) -> list[str]:
    """Ids of queued referrals not scored by ``model_version`` (unscored first, oldest first)."""
    query = (
        select(QueueEntryRow.referral_id)
        .where(
            or_(
                QueueEntryRow.model_version.is_(None),
                QueueEntryRow.model_version != model_version,
            )
        )
        .order_by(QueueEntryRow.score_id.is_not(None), QueueEntryRow.received_at)
        .limit(limit)
    )
    return list(session.scalars(query))
