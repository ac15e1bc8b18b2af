"""The online builder: the catalogue for one referral, read from the store.

Indexed queries, each strictly before the referral (events: occurred and recorded before it),
newest first, at most ``MAX_RECORDS``:
the referrals, events and decisions of the child and household; the memberships of the
household and of the child; then, only when there are any, the records about the household's
other members and the events of the child's earlier households while the child lived there.
Then the same ``pointwise.evaluate`` the tests hold equal to the batch builder.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler

from features.catalogue import PERSON_RECORD_KINDS
from features.pointwise import SignalValue, evaluate
from features.records import (
    DecisionRecord,
    EventRecord,
    History,
    MembershipRecord,
    PersonRecord,
    ReferralRecord,
    to_ms,
)
from triage.store.coltypes import NaiveDatetimeError
from triage.store.tables import (
    ChildRow,
    DecisionRow,
    EventRow,
    HouseholdMembershipRow,
    PersonRow,
    ReferralRow,
)

MAX_RECORDS = 5_000
"""Per source; a history that reaches it is flagged ``truncated`` (all-time counts may be low)."""


class ReferralNotInStore(LookupError):
    """The referral to build features for is not in the store."""


HistorySizes = tuple[int, int, int, int, int, int]
"""Records read per query (referrals, events, decisions, memberships, members' records, events
of earlier households), each at most ``MAX_RECORDS``."""


@dataclass(frozen=True)
class OnlineFeatures:
    """Signals for one referral with their provenance, and whether history was cut short."""

    referral_id: str
    values: dict[str, SignalValue]
    truncated: bool
    sizes: HistorySizes = (0, 0, 0, 0, 0, 0)
    """How many records the history held (``history_sizes`` tells whether it has grown since)."""

    def vector(self) -> dict[str, float]:
        """Signal name to value."""
        return {name: sv.value for name, sv in self.values.items()}


def _referral_record(r: Sequence[Any]) -> ReferralRecord:
    """A referral from values laid out as ``REFERRAL_COLUMNS``, typed or raw from the driver."""
    return ReferralRecord(
        referral_id=r[0],
        child_id=r[1],
        household_id=r[2],
        t_ms=_raw_ms(r[3]),
        referrer_type=r[4],
        referrer_relationship=r[5],
        referrer_id=r[6],
        concerns=_raw_list(r[7]),
        injury_reported=bool(r[8]),
        injury_sites=_raw_list(r[9]),
    )


REFERRAL_COLUMNS = (
    ReferralRow.referral_id,
    ReferralRow.child_id,
    ReferralRow.household_id,
    ReferralRow.received_at,
    ReferralRow.referrer_type,
    ReferralRow.referrer_relationship,
    ReferralRow.referrer_id,
    ReferralRow.concerns,
    ReferralRow.injury_reported,
    ReferralRow.injury_sites,
)


_REFERRALS_BEFORE = (
    select(*REFERRAL_COLUMNS)
    .where(
        or_(
            ReferralRow.child_id == bindparam("child"),
            ReferralRow.household_id == bindparam("household"),
        ),
        ReferralRow.received_at < bindparam("before"),
    )
    .order_by(ReferralRow.received_at.desc())
    .limit(MAX_RECORDS)
)
# The time rule for events: recorded (shared by the agency) before the referral too; null is
# an event stored before recorded_at existed, known when it occurred.
_KNOWN_BEFORE = or_(EventRow.recorded_at.is_(None), EventRow.recorded_at < bindparam("before"))
_EVENTS_BEFORE = (
    select(
        EventRow.event_id,
        EventRow.child_id,
        EventRow.household_id,
        EventRow.occurred_at,
        EventRow.agency,
        EventRow.kind,
        EventRow.recorded_at,
    )
    .where(
        or_(
            EventRow.child_id == bindparam("child"), EventRow.household_id == bindparam("household")
        ),
        EventRow.occurred_at < bindparam("before"),
        _KNOWN_BEFORE,
    )
    .order_by(EventRow.occurred_at.desc())
    .limit(MAX_RECORDS)
)
_DECISIONS_BEFORE = (
    select(
        DecisionRow.referral_id,
        ReferralRow.child_id,
        ReferralRow.household_id,
        DecisionRow.decided_at,
        DecisionRow.decision,
    )
    .join(ReferralRow, ReferralRow.referral_id == DecisionRow.referral_id)
    .where(ReferralRow.child_id == bindparam("child"), DecisionRow.decided_at < bindparam("before"))
    .order_by(DecisionRow.decided_at.desc())
    .limit(MAX_RECORDS)
)
_M = HouseholdMembershipRow
_MEMBERSHIPS_BEFORE = (
    select(
        _M.membership_id,
        _M.person_id,
        _M.household_id,
        _M.role,
        _M.joined_at,
        _M.left_at,
        PersonRow.date_of_birth,
    )
    .join(PersonRow, PersonRow.person_id == _M.person_id)
    .where(
        or_(_M.household_id == bindparam("household"), _M.person_id == bindparam("child")),
        _M.joined_at < bindparam("before"),
    )
    .order_by(_M.joined_at.desc())
    .limit(MAX_RECORDS)
)
_OTHER_MEMBERS = select(_M.person_id).where(
    _M.household_id == bindparam("household"),
    _M.joined_at < bindparam("before"),
    _M.person_id != bindparam("child"),
)
# Inlined: an expanding IN parameter would not survive compiling once for the driver. The kinds
# are the vocabulary's own constants.
_RECORD_KINDS: list[ColumnElement[str]] = [
    literal_column(f"'{kind}'") for kind in sorted(PERSON_RECORD_KINDS)
]
# Two halves, each read from its covering index: records naming a member as their person, and
# as their child.
_MEMBER_RECORDS = union_all(
    *(
        select(
            EventRow.event_id, member, EventRow.occurred_at, EventRow.kind, EventRow.recorded_at
        ).where(
            member.in_(_OTHER_MEMBERS),
            EventRow.occurred_at < bindparam("before"),
            _KNOWN_BEFORE,
            EventRow.kind.in_(_RECORD_KINDS),
        )
        for member in (EventRow.person_id, EventRow.child_id)
    )
).subquery()
_MEMBER_RECORDS_BEFORE = (
    select(_MEMBER_RECORDS).order_by(_MEMBER_RECORDS.c.occurred_at.desc()).limit(MAX_RECORDS)
)
# The events of the child's other households while the child lived there.
_STAY_EVENTS_BEFORE = (
    select(
        EventRow.event_id,
        EventRow.child_id,
        EventRow.household_id,
        EventRow.occurred_at,
        EventRow.agency,
        EventRow.kind,
        EventRow.recorded_at,
    )
    .join(
        _M,
        and_(
            _M.household_id == EventRow.household_id,
            _M.person_id == bindparam("child"),
            _M.household_id != bindparam("household"),
            EventRow.occurred_at >= _M.joined_at,
            or_(_M.left_at.is_(None), EventRow.occurred_at < _M.left_at),
        ),
    )
    .where(EventRow.occurred_at < bindparam("before"), _KNOWN_BEFORE)
    .order_by(EventRow.occurred_at.desc())
    .limit(MAX_RECORDS)
)
_REFERRAL_WITH_BIRTH = (
    select(*REFERRAL_COLUMNS, ChildRow.date_of_birth)
    .join(ChildRow, ChildRow.child_id == ReferralRow.child_id)
    .where(ReferralRow.referral_id == bindparam("referral_id"))
)
_HISTORY_SIZES = select(
    *(
        select(func.count()).select_from(statement.subquery()).scalar_subquery()
        for statement in (
            _REFERRALS_BEFORE,
            _EVENTS_BEFORE,
            _DECISIONS_BEFORE,
            _MEMBERSHIPS_BEFORE,
            _MEMBER_RECORDS_BEFORE,
            _STAY_EVENTS_BEFORE,
        )
    )
)
# Statements are built once: constructing them per call cost more than running them.


@dataclass(frozen=True)
class _DriverStatement:
    """A statement compiled once for a dialect, run below SQLAlchemy's result processing."""

    sql: str
    positions: tuple[str, ...] | None
    defaults: dict[str, Any]


_COMPILED: dict[tuple[str, str, str, int], _DriverStatement] = {}


def _driver_statement(statement: ClauseElement, dialect: Dialect) -> _DriverStatement:
    key = (dialect.name, dialect.driver, dialect.paramstyle, id(statement))
    if key not in _COMPILED:
        # A statement (not DDL) compiles to a SQLCompiler, which knows its parameter order.
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        positions = tuple(compiled.positiontup) if compiled.positiontup else None
        _COMPILED[key] = _DriverStatement(compiled.string, positions, dict(compiled.params))
    return _COMPILED[key]


def _run(
    connection: Connection, statement: ClauseElement, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Execute at the driver level; values come back raw (SQLite: text times and JSON)."""
    compiled = _driver_statement(statement, connection.dialect)
    merged = {**compiled.defaults, **params}
    args = tuple(merged[name] for name in compiled.positions) if compiled.positions else merged
    driver = connection.connection.driver_connection
    if driver is None:  # only an invalidated connection has no driver connection
        raise RuntimeError("the session's database connection has been invalidated")
    cursor = driver.cursor()  # inside the session's transaction
    try:
        cursor.execute(compiled.sql, args)
        rows: list[tuple[Any, ...]] = cursor.fetchall()  # DBAPI rows carry no types
        return rows
    finally:
        cursor.close()


def _bind_time(moment: datetime, dialect_name: str) -> datetime | str:
    """A UTC instant as the store writes it: SQLite keeps naive UTC text at microseconds."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetimeError(f"naive datetime {moment!r}: timestamps must be tz-aware")
    utc = moment.astimezone(UTC)
    if dialect_name == "sqlite":
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")
    return utc


def _raw_ms(value: datetime | str) -> int:
    """Milliseconds from a raw stored time (SQLite text is naive UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return to_ms(value)


def _maybe_ms(value: datetime | str | None) -> int | None:
    """Milliseconds from a raw stored time that may be null."""
    return None if value is None else _raw_ms(value)


def _raw_list(value: list[str] | str | None) -> frozenset[str]:
    """A stored JSON list (text on SQLite) as a set."""
    if isinstance(value, str):
        value = json.loads(value)
    return frozenset(value or ())


def _history_params(
    connection: Connection, query: ReferralRecord, received_at: datetime
) -> dict[str, Any]:
    return {
        "child": query.child_id,
        "household": query.household_id,
        "before": _bind_time(received_at, connection.dialect.name),
    }


def history_sizes(
    session: Session, *, query: ReferralRecord, received_at: datetime
) -> HistorySizes:
    """``OnlineFeatures.sizes`` as the store holds them now, in one statement."""
    connection = session.connection()
    (sizes,) = _run(connection, _HISTORY_SIZES, _history_params(connection, query, received_at))
    a, b, c, d, e, f = (int(size) for size in sizes)
    return (a, b, c, d, e, f)


def load_history(
    session: Session,
    *,
    query: ReferralRecord,
    received_at: datetime,
    exclude_record_ids: Collection[str] = (),
) -> tuple[History, bool, HistorySizes]:
    """The child's and household's records strictly before the referral, newest first, bounded.

    Also whether a source reached ``MAX_RECORDS``, and how many records each held.
    """
    connection = session.connection()
    params = _history_params(connection, query, received_at)
    # Driver-level execution: at ~50 records, SQLAlchemy's per-row result processing cost
    # more than SQLite's own work. Raw values are converted here instead.
    refs = _run(connection, _REFERRALS_BEFORE, params)
    events = _run(connection, _EVENTS_BEFORE, params)
    decisions = _run(connection, _DECISIONS_BEFORE, params)
    memberships = _run(connection, _MEMBERSHIPS_BEFORE, params)
    # The two queries below find nothing without other members or another household: skipped.
    others = any(m[2] == query.household_id and m[1] != query.child_id for m in memberships)
    records = _run(connection, _MEMBER_RECORDS_BEFORE, params) if others else []
    elsewhere = any(m[2] != query.household_id for m in memberships)
    stay_events = _run(connection, _STAY_EVENTS_BEFORE, params) if elsewhere else []
    excluded = set(exclude_record_ids)
    unique_events = {e[0]: e for e in (*stay_events, *events)}  # a record read twice counts once
    history = History(
        referrals=[_referral_record(r) for r in refs if r[0] not in excluded],
        events=[
            EventRecord(e[0], e[1], e[2], _raw_ms(e[3]), e[4], e[5], recorded_ms=_maybe_ms(e[6]))
            for e in unique_events.values()
            if e[0] not in excluded
        ],
        decisions=[
            DecisionRecord(d[0], d[1], d[2], _raw_ms(d[3]), d[4])
            for d in decisions
            if d[0] not in excluded
        ],
        memberships=[_membership_record(m) for m in memberships if m[0] not in excluded],
        person_records=[
            PersonRecord(r[0], r[1], _raw_ms(r[2]), r[3], _maybe_ms(r[4]))
            for r in records
            if r[0] not in excluded
        ],
    )
    sizes = (
        len(refs),
        len(events),
        len(decisions),
        len(memberships),
        len(records),
        len(stay_events),
    )
    return history, max(sizes) >= MAX_RECORDS, sizes


def _membership_record(m: Sequence[Any]) -> MembershipRecord:
    """A membership from raw driver values laid out as ``_MEMBERSHIPS_BEFORE`` selects them."""
    born = m[6]
    if isinstance(born, str):
        born = date.fromisoformat(born)
    return MembershipRecord(
        membership_id=m[0],
        person_id=m[1],
        household_id=m[2],
        role=m[3],
        joined_ms=_raw_ms(m[4]),
        left_ms=None if m[5] is None else _raw_ms(m[5]),
        born_day=None if born is None else (born - _EPOCH_DAY).days,
    )


_EPOCH_DAY = date(1970, 1, 1)


def online_features(
    session: Session, *, referral_id: str, exclude_record_ids: Collection[str] = ()
) -> OnlineFeatures:
    """Every signal for one stored referral, with provenance; disputed records can be left out."""
    row = session.connection().execute(_REFERRAL_WITH_BIRTH, {"referral_id": referral_id}).first()
    if row is None:
        raise ReferralNotInStore(referral_id)
    return features_for(
        session,
        query=_referral_record(row),
        received_at=row.received_at,
        born=row.date_of_birth,
        exclude_record_ids=exclude_record_ids,
    )


def features_for(
    session: Session,
    *,
    query: ReferralRecord,
    received_at: datetime,
    born: date,
    exclude_record_ids: Collection[str] = (),
) -> OnlineFeatures:
    """Every signal for a referral given as a record (stored or not yet), from its history."""
    history, truncated, sizes = load_history(
        session, query=query, received_at=received_at, exclude_record_ids=exclude_record_ids
    )
    return OnlineFeatures(query.referral_id, evaluate(query, born, history), truncated, sizes)
