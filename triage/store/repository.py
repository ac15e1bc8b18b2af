"""Thin repository functions; the session and its transaction belong to the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    bindparam,
    delete,
    exists,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from triage.store.auditlog import (
    CHAIN_LOCK_KEY,
    GENESIS,
    chain_hash,
    event_document,
    normalise_payload,
)
from triage.store.errors import (
    ChildNotFound,
    DuplicateEvent,
    DuplicateReferral,
    ReferralAlreadyDecided,
    ReferralNotDecided,
    ReferralNotFound,
    StoreError,
)
from triage.store.tables import (
    ApiKeyRow,
    AuditEventRow,
    ChildRow,
    DecisionRow,
    DisputeRow,
    EventRow,
    HouseholdRow,
    IdempotencyKeyRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
    StoreProbeRow,
    UserRow,
    utcnow,
)
from triage.vocab import DecisionKind

HISTORY_LIMIT = 500


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One entry of a child's timeline: a referral or an agency event."""

    at: datetime
    kind: Literal["referral", "event"]
    row: ReferralRow | EventRow


def add_household(session: Session, *, household: Mapping[str, Any]) -> HouseholdRow:
    """Add a household."""
    row = HouseholdRow(**household)
    session.add(row)
    session.flush()
    return row


def add_child(session: Session, *, child: Mapping[str, Any]) -> ChildRow:
    """Add a child (its household must exist)."""
    row = ChildRow(**child)
    session.add(row)
    session.flush()
    return row


# Hot-path writes and reads are prebuilt Core statements run on the session's connection:
# no ORM unit of work, no statement built per call (the intake and scoring write paths).


def _connection(session: Session) -> Connection:
    session.flush()  # as the ORM's autoflush would: pending objects first (usually none)
    return session.connection()


_INSERT_IF_NEW: dict[tuple[str, str, bool], Any] = {}
_DIALECT_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert_if_new_statement(connection: Connection, table: Table, *, returning: bool) -> Any:
    key = (connection.dialect.name, table.name, returning)
    statement = _INSERT_IF_NEW.get(key)
    if statement is None:
        dialect_insert = _DIALECT_INSERTS.get(key[0])
        if dialect_insert is None:
            raise StoreError(f"the store supports SQLite and PostgreSQL, not {key[0]}")
        statement = dialect_insert(table).on_conflict_do_nothing()
        if returning:  # not rowcount: psycopg reports -1 for this statement
            statement = statement.returning(*table.primary_key.columns)
        _INSERT_IF_NEW[key] = statement
    return statement


def _insert_if_new(session: Session, table: Table, values: Mapping[str, Any]) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING`` (Core, no ORM flush); True when the row went in.

    On PostgreSQL a concurrent transaction's uncommitted row with the same key makes this
    wait for that transaction; no savepoint is needed, so nothing poisons the caller's.
    """
    connection = _connection(session)
    statement = _insert_if_new_statement(connection, table, returning=True)
    return connection.execute(statement, dict(values)).first() is not None


def add_household_if_new(session: Session, *, household: Mapping[str, Any]) -> bool:
    """Add a household unless one with its id is stored (also by a concurrent transaction)."""
    return _insert_if_new(session, HouseholdRow.__table__, household)


def add_child_if_new(session: Session, *, child: Mapping[str, Any]) -> bool:
    """Add a child unless one with its id is stored; its household must exist."""
    return _insert_if_new(session, ChildRow.__table__, child)


_CHILD_BIRTH_AND_HOUSEHOLD = select(
    select(ChildRow.date_of_birth)
    .where(ChildRow.child_id == bindparam("child_id"))
    .scalar_subquery(),
    exists().where(HouseholdRow.household_id == bindparam("household_id")),
)


def child_birth_and_household(
    session: Session, *, child_id: str, household_id: str
) -> tuple[date | None, bool]:
    """A stored child's date of birth (None when unknown) and whether a household is stored."""
    row = (
        _connection(session)
        .execute(_CHILD_BIRTH_AND_HOUSEHOLD, {"child_id": child_id, "household_id": household_id})
        .one()
    )
    return row[0], bool(row[1])


_CHILD_IDENTITY = select(ChildRow.given_name, ChildRow.family_name, ChildRow.date_of_birth).where(
    ChildRow.child_id == bindparam("child_id")
)


def child_identity(session: Session, *, child_id: str) -> tuple[str, str, date] | None:
    """A stored child's given name, family name and date of birth; None when unknown."""
    row = _connection(session).execute(_CHILD_IDENTITY, {"child_id": child_id}).first()
    return None if row is None else (row[0], row[1], row[2])


def identity_to_confirm(session: Session, *, referral_ids: Sequence[str]) -> set[str]:
    """Those of ``referral_ids`` whose child's details contradict the stored child."""
    if not referral_ids:
        return set()
    # Filtered here, not in SQL: a JSON column stores None as JSON null, not SQL NULL.
    rows = session.execute(
        select(ReferralRow.referral_id, ReferralRow.identity_mismatch).where(
            ReferralRow.referral_id.in_(referral_ids)
        )
    )
    return {referral_id for referral_id, mismatch in rows if mismatch}


def get_child(session: Session, *, child_id: str) -> ChildRow | None:
    """Return the child with this id, or None."""
    return session.get(ChildRow, child_id)


def get_referral(session: Session, *, referral_id: str) -> ReferralRow | None:
    """Return the referral with this id, or None."""
    return session.get(ReferralRow, referral_id)


def get_referral_by_business_key(
    session: Session, *, source_system: str, source_referral_id: str
) -> ReferralRow | None:
    """Return the referral with this source-system key, or None."""
    return session.scalars(
        select(ReferralRow).where(
            ReferralRow.source_system == source_system,
            ReferralRow.source_referral_id == source_referral_id,
        )
    ).one_or_none()


_REFERRAL_ID_BY_BUSINESS_KEY = select(ReferralRow.referral_id).where(
    ReferralRow.source_system == bindparam("source_system"),
    ReferralRow.source_referral_id == bindparam("source_referral_id"),
)


def referral_id_by_business_key(
    session: Session, *, source_system: str, source_referral_id: str
) -> str | None:
    """The id of the referral with this source-system key, or None (no ORM object)."""
    return (
        _connection(session)
        .execute(
            _REFERRAL_ID_BY_BUSINESS_KEY,
            {"source_system": source_system, "source_referral_id": source_referral_id},
        )
        .scalar()
    )


def add_referral(session: Session, *, referral: Mapping[str, Any]) -> ReferralRow:
    """Add a referral; raise DuplicateReferral if its id or business key is already stored."""
    row = ReferralRow(**referral)
    existing = _existing_referral(session, row)
    if existing is None:
        try:
            with session.begin_nested():  # a lost race must not poison the caller's transaction
                session.add(row)
        except IntegrityError:
            existing = _existing_referral(session, row)
            if existing is None:
                raise
    if existing is not None:
        raise DuplicateReferral(
            existing.referral_id, existing.source_system, existing.source_referral_id
        )
    return row


def insert_referral(session: Session, *, referral: Mapping[str, Any]) -> None:
    """Add a referral without the ORM; raise DuplicateReferral if its id or key is stored.

    The caller keeps the values it passed; no ``ReferralRow`` enters the session.
    """
    if _insert_if_new(session, ReferralRow.__table__, referral):
        return
    columns = (ReferralRow.referral_id, ReferralRow.source_system, ReferralRow.source_referral_id)
    for where in (
        (
            ReferralRow.source_system == referral["source_system"],
            ReferralRow.source_referral_id == referral["source_referral_id"],
        ),
        (ReferralRow.referral_id == referral["referral_id"],),
    ):
        existing = session.execute(select(*columns).where(*where)).first()
        if existing is not None:
            raise DuplicateReferral(*existing)
    raise StoreError("the referral conflicted with a stored row that is not there")


_REFERRAL_FACTS = (
    select(
        ReferralRow.status,
        ReferralRow.child_id,
        ReferralRow.received_at,
        ReferralRow.injury_reported,
        ReferralRow.injury_sites,
        ReferralRow.concerns,
        ReferralRow.referrer_relationship,
        ReferralRow.injury_photographed,
        ChildRow.date_of_birth,
    )
    .join(ChildRow, ChildRow.child_id == ReferralRow.child_id)
    .where(ReferralRow.referral_id == bindparam("referral_id"))
)


def get_referral_facts(session: Session, *, referral_id: str) -> Row[Any] | None:
    """What scoring and the queue need of a stored referral, with the child's date of birth.

    Columns: status, child_id, received_at, injury_reported, injury_sites, concerns,
    referrer_relationship, injury_photographed, date_of_birth; None when there is no such
    referral.
    """
    return _connection(session).execute(_REFERRAL_FACTS, {"referral_id": referral_id}).first()


def _existing_referral(session: Session, row: ReferralRow) -> ReferralRow | None:
    return get_referral_by_business_key(
        session, source_system=row.source_system, source_referral_id=row.source_referral_id
    ) or get_referral(session, referral_id=row.referral_id)


def add_event(session: Session, *, event: Mapping[str, Any]) -> EventRow:
    """Add an agency event; raise DuplicateEvent if its id or business key is already stored."""
    row = EventRow(**event)
    existing = _existing_event(session, row)
    if existing is None:
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            existing = _existing_event(session, row)
            if existing is None:
                raise
    if existing is not None:
        raise DuplicateEvent(existing.event_id, existing.source_system, existing.source_event_id)
    return row


def _existing_event(session: Session, row: EventRow) -> EventRow | None:
    by_key = session.scalars(
        select(EventRow).where(
            EventRow.source_system == row.source_system,
            EventRow.source_event_id == row.source_event_id,
        )
    ).one_or_none()
    return by_key or session.get(EventRow, row.event_id)


def list_open_referrals(
    session: Session, *, limit: int = 100, received_after: datetime | None = None
) -> list[ReferralRow]:
    """Return up to ``limit`` open referrals, oldest first (strictly after ``received_after``)."""
    query = select(ReferralRow).where(ReferralRow.status == "open")
    if received_after is not None:
        query = query.where(ReferralRow.received_at > received_after)
    query = query.order_by(ReferralRow.received_at, ReferralRow.referral_id).limit(limit)
    return list(session.scalars(query))


def record_decision(
    session: Session,
    *,
    referral_id: str,
    decision: str,
    decided_at: datetime,
    agreement: str | None = None,
    reason_codes: Sequence[str] = (),
    rationale: str | None = None,
    decided_by: str | None = None,
    synthetic: bool = False,
) -> DecisionRow:
    """Record the decision on an open referral and close it; refuse a second decision."""
    decision = DecisionKind(decision).value
    # One conditional UPDATE both checks and closes, so two concurrent deciders cannot both win.
    closed = session.execute(
        update(ReferralRow)
        .where(ReferralRow.referral_id == referral_id, ReferralRow.status == "open")
        .values(status="decided")
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        if get_referral(session, referral_id=referral_id) is None:
            raise ReferralNotFound(referral_id)
        raise ReferralAlreadyDecided(referral_id)
    row = DecisionRow(
        referral_id=referral_id,
        decided_at=decided_at,
        decision=decision,
        agreement=agreement,
        reason_codes=list(reason_codes),
        rationale=rationale,
        decided_by=decided_by,
        synthetic=synthetic,
    )
    session.add(row)
    session.flush()
    return row


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


_INSERT_SCORE = ScoreRow.__table__.insert()


def insert_score(session: Session, *, score: Mapping[str, Any]) -> int:
    """Store a model score without the ORM (every column but ``id``); return its id."""
    result = _connection(session).execute(_INSERT_SCORE, dict(score))
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


def history_for_child(
    session: Session, *, child_id: str, before: datetime | None = None, limit: int = HISTORY_LIMIT
) -> list[HistoryItem]:
    """Return the latest ``limit`` referrals and events of a child and its household, by time."""
    child = get_child(session, child_id=child_id)
    if child is None:
        raise ChildNotFound(child_id)
    referrals = select(ReferralRow).where(
        or_(ReferralRow.child_id == child_id, ReferralRow.household_id == child.household_id)
    )
    events = select(EventRow).where(
        or_(EventRow.child_id == child_id, EventRow.household_id == child.household_id)
    )
    if before is not None:
        referrals = referrals.where(ReferralRow.received_at < before)
        events = events.where(EventRow.occurred_at < before)
    referrals = referrals.order_by(ReferralRow.received_at.desc()).limit(limit)
    events = events.order_by(EventRow.occurred_at.desc()).limit(limit)
    items = [HistoryItem(r.received_at, "referral", r) for r in session.scalars(referrals)]
    items += [HistoryItem(e.occurred_at, "event", e) for e in session.scalars(events)]
    items.sort(key=lambda item: item.at)
    return items[-limit:] if limit else []


def append_audit_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    model_version: str | None = None,
    payload: Mapping[str, Any],
    occurred_at: datetime | None = None,
) -> AuditEventRow:
    """Append an audit record, chained to the one before it (see ``triage.store.auditlog``)."""
    row = AuditEventRow(
        **_chained_audit_values(
            _locked_chain_head(_connection(session)),
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            model_version=model_version,
            payload=payload,
            occurred_at=occurred_at,
        )
    )
    session.add(row)
    session.flush()
    return row


_INSERT_AUDIT_EVENT = AuditEventRow.__table__.insert()
_CHAIN_HEAD = select(AuditEventRow.hash).order_by(AuditEventRow.id.desc()).limit(1)
_CHAIN_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=CHAIN_LOCK_KEY)


def insert_audit_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    model_version: str | None = None,
    payload: Mapping[str, Any],
    occurred_at: datetime | None = None,
    after: str | None = None,
) -> str:
    """``append_audit_event`` without the ORM (no row object); returns the event's hash.

    ``after`` is the hash this transaction's previous ``insert_audit_event`` returned: the
    chain's head is then known (and locked) without reading it again.
    """
    connection = _connection(session)
    values = _chained_audit_values(
        after if after is not None else _locked_chain_head(connection),
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        model_version=model_version,
        payload=payload,
        occurred_at=occurred_at,
    )
    connection.execute(_INSERT_AUDIT_EVENT, values)
    return values["hash"]


def _locked_chain_head(connection: Connection) -> str:
    """Serialise appenders and return the hash of the last event (``GENESIS`` when none).

    SQLite writers already hold the database write lock (BEGIN IMMEDIATE); on PostgreSQL a
    transaction-scoped advisory lock stops two writers chaining onto the same hash. It is
    held until the caller's transaction ends, so events are committed in chain order.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(_CHAIN_LOCK)
    return connection.execute(_CHAIN_HEAD).scalar() or GENESIS


def _chained_audit_values(
    prev_hash: str,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    model_version: str | None,
    payload: Mapping[str, Any],
    occurred_at: datetime | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "occurred_at": occurred_at or utcnow(),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "model_version": model_version,
        "payload": normalise_payload(payload),
    }
    return fields | {
        "prev_hash": prev_hash,
        "hash": chain_hash(prev_hash, event_document(**fields)),
    }


# --- service: idempotency keys, the review queue, disputes, reopening -----------------------


def get_idempotency_key(
    session: Session, *, actor: str, scope: str, key: str
) -> IdempotencyKeyRow | None:
    """Return the stored idempotency key of this actor and route, or None."""
    return session.get(IdempotencyKeyRow, (actor, scope, key))


def claim_idempotency_key(
    session: Session, *, actor: str, scope: str, key: str, request_hash: str, entity_id: str | None
) -> IdempotencyKeyRow:
    """Store a new idempotency key, or return the one a concurrent request stored first.

    The new key is inserted without the ORM: the row returned for it is not in the session.
    """
    values = {
        "actor": actor,
        "scope": scope,
        "key": key,
        "request_hash": request_hash,
        "entity_id": entity_id,
        "created_at": utcnow(),
    }
    if _insert_if_new(session, IdempotencyKeyRow.__table__, values):
        return IdempotencyKeyRow(**values)
    existing = get_idempotency_key(session, actor=actor, scope=scope, key=key)
    if existing is None:  # pragma: no cover - a conflict names a stored row
        raise StoreError("the idempotency key conflicted with a stored row that is not there")
    return existing


def store_idempotent_response(
    session: Session, *, row: IdempotencyKeyRow, status_code: int, response: Mapping[str, Any]
) -> None:
    """Record the reply a key replays from now on."""
    session.execute(
        update(IdempotencyKeyRow)
        .where(
            IdempotencyKeyRow.actor == row.actor,
            IdempotencyKeyRow.scope == row.scope,
            IdempotencyKeyRow.key == row.key,
        )
        .values(status_code=status_code, response=dict(response))
    )


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


def put_queue_entry(session: Session, *, entry: Mapping[str, Any]) -> QueueEntryRow:
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


_INSERT_QUEUE_ENTRY = QueueEntryRow.__table__.insert()
_UPDATE_QUEUE_ENTRY = update(QueueEntryRow.__table__).where(
    QueueEntryRow.__table__.c.referral_id == bindparam("b_referral_id")
)


def insert_queue_entry(session: Session, *, entry: Mapping[str, Any]) -> None:
    """Queue a referral that has no entry, without the ORM."""
    _connection(session).execute(_INSERT_QUEUE_ENTRY, dict(entry))


def insert_queue_entries(session: Session, *, entries: Sequence[Mapping[str, Any]]) -> None:
    """Queue referrals in one executemany; one queued meanwhile (another worker) keeps its entry."""
    if entries:
        connection = _connection(session)
        statement = _insert_if_new_statement(connection, QueueEntryRow.__table__, returning=False)
        connection.execute(statement, [dict(e) for e in entries])


def replace_queue_entry(session: Session, *, entry: Mapping[str, Any]) -> None:
    """``put_queue_entry`` without the ORM: update the referral's entry, or insert it."""
    values = {"updated_at": utcnow(), **entry}
    updated = _connection(session).execute(
        _UPDATE_QUEUE_ENTRY, {**values, "b_referral_id": entry["referral_id"]}
    )
    if updated.rowcount != 1:  # type: ignore[attr-defined]
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
    after: tuple[int, float, datetime, str] | None = None,
    limit: int = 50,
) -> list[QueueEntryRow]:
    """Return up to ``limit`` queue entries in queue order, strictly after the ``after`` key."""
    key = (
        QueueEntryRow.tier,
        QueueEntryRow.sort_probability,
        QueueEntryRow.received_at,
        QueueEntryRow.referral_id,
    )
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


def open_referrals_affected_by(
    session: Session,
    *,
    child_ids: Sequence[str],
    household_ids: Sequence[str],
    received_after: datetime,
) -> list[str]:
    """Ids of open referrals of these children or households received after a moment."""
    if not child_ids and not household_ids:
        return []
    query = select(ReferralRow.referral_id).where(
        ReferralRow.status == "open",
        ReferralRow.received_at > received_after,
        or_(ReferralRow.child_id.in_(child_ids), ReferralRow.household_id.in_(household_ids)),
    )
    return list(session.scalars(query.order_by(ReferralRow.received_at)))


def reopen_referral(session: Session, *, referral_id: str) -> ReferralRow:
    """Reopen a decided referral (its decisions stay on record); refuse an open one."""
    reopened = session.execute(
        update(ReferralRow)
        .where(ReferralRow.referral_id == referral_id, ReferralRow.status == "decided")
        .values(status="open")
    )
    if reopened.rowcount != 1:  # type: ignore[attr-defined]
        if get_referral(session, referral_id=referral_id) is None:
            raise ReferralNotFound(referral_id)
        raise ReferralNotDecided(referral_id)
    row = get_referral(session, referral_id=referral_id)
    assert row is not None
    session.refresh(row)
    return row


def decisions_for_referral(session: Session, *, referral_id: str) -> list[DecisionRow]:
    """Every decision recorded on a referral, oldest first."""
    query = select(DecisionRow).where(DecisionRow.referral_id == referral_id)
    return list(session.scalars(query.order_by(DecisionRow.decided_at, DecisionRow.id)))


def decisions_for_referrals(session: Session, *, referral_ids: Sequence[str]) -> list[DecisionRow]:
    """Every decision on any of these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(DecisionRow).where(DecisionRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(DecisionRow.decided_at, DecisionRow.id)))


def add_dispute(
    session: Session,
    *,
    referral_id: str,
    record_id: str,
    reason: str,
    disputed_by: str,
    disputed_at: datetime | None = None,
    model_version: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> DisputeRow:
    """Store a dispute of a record with the scores before and after leaving it out."""
    row = DisputeRow(
        referral_id=referral_id,
        record_id=record_id,
        reason=reason,
        disputed_by=disputed_by,
        disputed_at=disputed_at or utcnow(),
        model_version=model_version,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
    )
    session.add(row)
    session.flush()
    return row


def disputes_for_referral(session: Session, *, referral_id: str) -> list[DisputeRow]:
    """Every dispute raised on a referral, oldest first."""
    query = select(DisputeRow).where(DisputeRow.referral_id == referral_id)
    return list(session.scalars(query.order_by(DisputeRow.disputed_at, DisputeRow.id)))


def record_exists(session: Session, *, record_id: str) -> bool:
    """Whether a referral or an agency event has this id (a decision's record is its referral)."""
    if session.get(ReferralRow, record_id) is not None:
        return True
    return session.get(EventRow, record_id) is not None


# --- access: users and API keys ---------------------------------------------------------------


def add_user(
    session: Session, *, user_id: str, username: str, password_hash: str, roles: Sequence[str]
) -> UserRow:
    """Add a user (the caller hashes the password)."""
    row = UserRow(
        user_id=user_id,
        username=username,
        password_hash=password_hash,
        roles=sorted(set(roles)),
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def get_user(session: Session, *, user_id: str) -> UserRow | None:
    """A user by id."""
    return session.get(UserRow, user_id)


def get_user_by_username(session: Session, *, username: str) -> UserRow | None:
    """A user by username."""
    return session.scalars(select(UserRow).where(UserRow.username == username)).first()


def add_api_key(
    session: Session,
    *,
    key_id: str,
    key_hash: str,
    name: str,
    source_system: str,
    scopes: Sequence[str],
    agencies: Sequence[str] = (),
) -> ApiKeyRow:
    """Add an API key by its hash (the key itself is never stored)."""
    row = ApiKeyRow(
        key_id=key_id,
        key_hash=key_hash,
        name=name,
        source_system=source_system,
        scopes=sorted(set(scopes)),
        agencies=sorted(set(agencies)),
        active=True,
    )
    session.add(row)
    session.flush()
    return row


_API_KEY_BY_HASH = select(ApiKeyRow).where(ApiKeyRow.key_hash == bindparam("key_hash"))


def get_api_key_by_hash(session: Session, *, key_hash: str) -> ApiKeyRow | None:
    """An API key by the SHA-256 of the key."""
    # Prebuilt: every request with an API key runs this.
    return session.scalars(_API_KEY_BY_HASH, {"key_hash": key_hash}).first()


def revoke_api_key(session: Session, *, key_id: str) -> bool:
    """Deactivate a key; False when there is no such key."""
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        return False
    row.active = False
    session.flush()
    return True


def set_password_hash(session: Session, *, user_id: str, password_hash: str) -> None:
    """Replace a user's password hash."""
    session.execute(
        update(UserRow).where(UserRow.user_id == user_id).values(password_hash=password_hash)
    )


# --- readiness ------------------------------------------------------------------------------

PROBE_ROW_ID = 1


def touch_store_probe(session: Session) -> None:
    """Rewrite the probe row (adding it if missing): a small write that needs room to commit."""
    now = utcnow()
    changed = session.execute(
        update(StoreProbeRow).where(StoreProbeRow.id == PROBE_ROW_ID).values(probed_at=now)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(insert(StoreProbeRow).values(id=PROBE_ROW_ID, probed_at=now))
