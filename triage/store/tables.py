"""The relational schema: one mapped class per table."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from triage.store.coltypes import JSONType, UTCDateTime

ID = 64
VOCAB = 40
NAME = 100
HASH = 64

REFERRAL_STATUSES = ("open", "decided")

# Named constraints let later batch-mode (SQLite) migrations find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        list[Any]: JSONType,
    }


def table_of(row_class: type[Base]) -> Table:
    """The ``Table`` a declarative row class maps (typed: ``__table__`` is a ``FromClause``)."""
    return cast(Table, row_class.__table__)  # every class here maps one Table, never a join


class HouseholdRow(Base):
    """A household, as derived from the children in an extract."""

    __tablename__ = "households"
    __table_args__ = (
        CheckConstraint("deprivation_decile BETWEEN 1 AND 10", name="deprivation_decile"),
    )

    household_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    deprivation_decile: Mapped[int | None] = mapped_column(Integer)
    synthetic: Mapped[bool] = mapped_column(Boolean)


class ChildRow(Base):
    """A child known to the front door."""

    __tablename__ = "children"
    __table_args__ = (
        CheckConstraint("deprivation_decile BETWEEN 1 AND 10", name="deprivation_decile"),
    )

    child_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    household_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("households.household_id"), index=True
    )
    given_name: Mapped[str] = mapped_column(String(NAME))
    family_name: Mapped[str] = mapped_column(String(NAME))
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(VOCAB))
    ethnicity: Mapped[str] = mapped_column(String(VOCAB))
    disability: Mapped[bool] = mapped_column(Boolean)
    deprivation_decile: Mapped[int | None] = mapped_column(Integer)
    synthetic: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PersonRow(Base):
    """A person in a household: every child (``person_id`` = ``child_id``) and every adult."""

    __tablename__ = "persons"

    person_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    is_child: Mapped[bool] = mapped_column(Boolean)
    given_name: Mapped[str | None] = mapped_column(String(NAME))
    family_name: Mapped[str | None] = mapped_column(String(NAME))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(VOCAB))
    synthetic: Mapped[bool] = mapped_column(Boolean)


class HouseholdMembershipRow(Base):
    """A person living in a household with a role, from ``joined_at`` until ``left_at``."""

    __tablename__ = "household_memberships"
    __table_args__ = (
        CheckConstraint("left_at IS NULL OR left_at >= joined_at", name="left_after_joined"),
        Index("ix_household_memberships_household", "household_id", "joined_at"),
        Index("ix_household_memberships_person", "person_id", "joined_at"),
    )

    membership_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(ID), ForeignKey("persons.person_id"))
    household_id: Mapped[str] = mapped_column(String(ID), ForeignKey("households.household_id"))
    role: Mapped[str] = mapped_column(String(VOCAB))
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    synthetic: Mapped[bool] = mapped_column(Boolean)


class ReferralRow(Base):
    """A referral (contact) received by the front door."""

    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("source_system", "source_referral_id"),
        CheckConstraint("status IN ('open', 'decided')", name="status"),
        Index(None, "child_id", "received_at"),
        Index(None, "household_id", "received_at"),
        Index(None, "status", "received_at"),
    )

    referral_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    source_system: Mapped[str] = mapped_column(String(ID))
    source_referral_id: Mapped[str] = mapped_column(String(ID))
    child_id: Mapped[str] = mapped_column(String(ID), ForeignKey("children.child_id"))
    household_id: Mapped[str] = mapped_column(String(ID), ForeignKey("households.household_id"))
    received_at: Mapped[datetime]
    referrer_type: Mapped[str] = mapped_column(String(VOCAB))
    referrer_relationship: Mapped[str | None] = mapped_column(String(VOCAB))
    referrer_id: Mapped[str | None] = mapped_column(String(ID))
    concerns: Mapped[list[str]]
    injury_reported: Mapped[bool] = mapped_column(Boolean)
    injury_sites: Mapped[list[str]]
    injury_photographed: Mapped[bool] = mapped_column(Boolean)
    narrative: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(VOCAB), default="open", server_default="open")
    synthetic: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    child_as_sent: Mapped[dict[str, Any] | None]
    """The child's details as this referral sent them (None: stored before, or an extract)."""
    identity_mismatch: Mapped[list[str] | None]
    """Fields of ``child_as_sent`` that contradict the stored child, for a person to confirm."""
    household_members: Mapped[list[Any] | None]
    """Who the referral says lives with the child, as sent (None: stored before, or an extract);
    what the referrer knows, not verified memberships."""


class EventRow(Base):
    """A contact recorded by a partner agency, about a child or a whole household."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source_system", "source_event_id"),
        # Covering indexes: a child's or household's history is read from the index alone.
        Index(
            "ix_events_child_history",
            "child_id",
            "occurred_at",
            "event_id",
            "household_id",
            "agency",
            "kind",
            "recorded_at",
        ),
        Index(
            "ix_events_household_history",
            "household_id",
            "occurred_at",
            "event_id",
            "child_id",
            "agency",
            "kind",
            "recorded_at",
        ),
        Index(
            "ix_events_person_history",
            "person_id",
            "occurred_at",
            "event_id",
            "kind",
            "recorded_at",
        ),
    )

    event_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    source_system: Mapped[str] = mapped_column(String(ID))
    source_event_id: Mapped[str] = mapped_column(String(ID))
    child_id: Mapped[str | None] = mapped_column(String(ID), ForeignKey("children.child_id"))
    household_id: Mapped[str | None] = mapped_column(
        String(ID), ForeignKey("households.household_id")
    )
    person_id: Mapped[str | None] = mapped_column(String(ID), ForeignKey("persons.person_id"))
    """The adult an event is about (vocabulary 2), beside its child or household."""
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime | None]
    """When the agency shared it (at or after ``occurred_at``); null: at ``occurred_at``."""
    agency: Mapped[str] = mapped_column(String(VOCAB))
    kind: Mapped[str] = mapped_column(String(VOCAB))
    attributes: Mapped[dict[str, Any]]
    synthetic: Mapped[bool] = mapped_column(Boolean)


class DecisionRow(Base):
    """A practitioner's front-door decision on a referral."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("referrals.referral_id"), index=True
    )
    decided_at: Mapped[datetime]
    decision: Mapped[str] = mapped_column(String(VOCAB))
    agreement: Mapped[str | None] = mapped_column(String(VOCAB))
    reason_codes: Mapped[list[str]]
    rationale: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(ID))
    synthetic: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[str | None] = mapped_column(String(VOCAB))
    """The practitioner's own priority (a ``Priority``); null for older clients and extracts."""
    priority_before_band: Mapped[bool | None] = mapped_column(Boolean)
    """Whether the priority was recorded before the band was shown ("judge first" mode)."""


class OutcomeRow(Base):
    """What happened to a referral within twelve months (the training label source)."""

    __tablename__ = "outcomes"

    referral_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("referrals.referral_id"), primary_key=True
    )
    highest_level: Mapped[str] = mapped_column(String(VOCAB))
    investigated_12m: Mapped[bool] = mapped_column(Boolean)
    significant_harm_12m: Mapped[bool] = mapped_column(Boolean)
    cp_category: Mapped[str | None] = mapped_column(String(VOCAB))
    synthetic: Mapped[bool] = mapped_column(Boolean)


class ScoreRow(Base):
    """A model score for a referral."""

    __tablename__ = "scores"
    __table_args__ = (
        CheckConstraint(
            "0 <= probability_low AND probability_low <= probability"
            " AND probability <= probability_high AND probability_high <= 1",
            name="probability_interval",
        ),
        Index(None, "referral_id", "scored_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(String(ID), ForeignKey("referrals.referral_id"))
    scored_at: Mapped[datetime]
    model_version: Mapped[str] = mapped_column(String(NAME))
    probability: Mapped[float] = mapped_column(Float)
    probability_low: Mapped[float] = mapped_column(Float)
    probability_high: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(VOCAB))
    flags: Mapped[list[str]]
    reasons: Mapped[list[Any]]


class AuditEventRow(Base):
    """An append-only audit record; ``prev_hash``/``hash`` will chain the records."""

    __tablename__ = "audit_events"
    # AUTOINCREMENT stops SQLite from ever reusing an id, which the hash chain relies on.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(VOCAB))
    entity_type: Mapped[str] = mapped_column(String(VOCAB))
    entity_id: Mapped[str | None] = mapped_column(String(ID))
    model_version: Mapped[str | None] = mapped_column(String(NAME))
    payload: Mapped[dict[str, Any]]
    prev_hash: Mapped[str | None] = mapped_column(String(HASH))
    hash: Mapped[str | None] = mapped_column(String(HASH))


KEY = 255


class IdempotencyKeyRow(Base):
    """A client's ``Idempotency-Key`` for one route: the request it named, the reply it got."""

    __tablename__ = "idempotency_keys"

    actor: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    scope: Mapped[str] = mapped_column(String(VOCAB), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(HASH))
    entity_id: Mapped[str | None] = mapped_column(String(ID))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueueEntryRow(Base):
    """An open referral's place in the review queue (denormalised for ordered, paged reads)."""

    __tablename__ = "queue_entries"
    __table_args__ = (
        Index(None, "tier", "sort_probability", "received_at", "referral_id"),
        Index(None, "received_at"),
        Index(None, "tier", "rank_at", "sort_probability", "referral_id"),
        Index(None, "child_id"),
    )

    referral_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("referrals.referral_id"), primary_key=True
    )
    child_id: Mapped[str] = mapped_column(String(ID))
    received_at: Mapped[datetime]
    age_months: Mapped[int] = mapped_column(Integer)
    concerns: Mapped[list[str]]
    concerns_key: Mapped[str] = mapped_column(String(1000))
    """``;a;b;``: lets a concern filter be a portable LIKE."""
    flags: Mapped[list[str]]
    tier: Mapped[int] = mapped_column(Integer)
    sort_probability: Mapped[float] = mapped_column(Float)
    """Minus the probability (0 when unscored), so the whole queue order is ascending."""
    band: Mapped[str | None] = mapped_column(String(VOCAB))
    model_band: Mapped[str | None] = mapped_column(String(VOCAB))
    probability: Mapped[float | None] = mapped_column(Float)
    probability_low: Mapped[float | None] = mapped_column(Float)
    probability_high: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(NAME))
    score_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("scores.id"))
    reasons: Mapped[list[Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    rank_at: Mapped[datetime]
    """The look-by time the queue is ordered by within a tier (``triage.queue.look_by``)."""


class DisputeRow(Base):
    """A practitioner's dispute of a record behind a referral's score, with the what-if."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("referrals.referral_id"), index=True
    )
    record_id: Mapped[str] = mapped_column(String(ID))
    reason: Mapped[str] = mapped_column(Text)
    disputed_by: Mapped[str] = mapped_column(String(NAME))
    disputed_at: Mapped[datetime]
    model_version: Mapped[str | None] = mapped_column(String(NAME))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class UserRow(Base):
    """A person who signs in: a practitioner, manager, researcher or admin."""

    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    username: Mapped[str] = mapped_column(String(NAME), unique=True)
    password_hash: Mapped[str] = mapped_column(String(KEY))
    roles: Mapped[list[str]]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sessions_valid_after: Mapped[datetime | None]
    """Page sessions and bearer tokens issued by this moment are revoked (set by signing out
    and by a new password)."""


class ApiKeyRow(Base):
    """A referral system's API key: only its SHA-256 is stored, bound to one source system."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(HASH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME))
    source_system: Mapped[str] = mapped_column(String(ID))
    scopes: Mapped[list[str]]
    agencies: Mapped[list[str]] = mapped_column(default=list, server_default="[]")
    """The agencies whose events the key may post (none: referrals only)."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoreProbeRow(Base):
    """One row that ``/readyz`` rewrites, while writes are failing, to learn if they work again."""

    __tablename__ = "store_probes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    probed_at: Mapped[datetime] = mapped_column(default=utcnow)


IDENTITY_RESOLUTIONS = ("given", "linked", "possible_match", "new", "loaded")
TASK_STATUSES = ("open", "confirmed", "rejected")


class IdentityRecordRow(Base):
    """One agency's view of one person (its client-index entry), and who it resolved to."""

    __tablename__ = "identity_records"
    __table_args__ = (
        Index(None, "source_system", "source_person_id"),
        Index(None, "person_id"),
        Index(None, "date_of_birth"),
        Index(None, "nhs_number"),
    )

    record_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    source_system: Mapped[str] = mapped_column(String(ID))
    source_person_id: Mapped[str] = mapped_column(String(ID))
    given_name: Mapped[str | None] = mapped_column(String(NAME))
    family_name: Mapped[str | None] = mapped_column(String(NAME))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(VOCAB))
    postcode: Mapped[str | None] = mapped_column(String(16))
    nhs_number: Mapped[str | None] = mapped_column(String(10))
    school: Mapped[str | None] = mapped_column(String(NAME))
    is_child: Mapped[bool] = mapped_column(Boolean)
    first_seen_at: Mapped[datetime]
    person_id: Mapped[str | None] = mapped_column(String(ID))
    """The person the record resolved to (None: not resolved yet, e.g. an extract's)."""
    resolution: Mapped[str | None] = mapped_column(String(VOCAB))
    """How: ``IDENTITY_RESOLUTIONS`` (``loaded``: from an extract, as it came)."""
    match_probability: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdentityTaskRow(Base):
    """A "possible same person" task: a person confirms or rejects a candidate match."""

    __tablename__ = "identity_tasks"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'confirmed', 'rejected')", name="status"),
        Index(None, "status", "task_id"),
        Index(None, "referral_id"),
        Index(None, "event_id"),
    )

    task_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    record_id: Mapped[str] = mapped_column(
        String(ID), ForeignKey("identity_records.record_id"), index=True
    )
    referral_id: Mapped[str | None] = mapped_column(String(ID))
    event_id: Mapped[str | None] = mapped_column(String(ID))
    """The agency event that opened the task, when an event (not a referral) did."""
    candidate_person_id: Mapped[str | None] = mapped_column(String(ID))
    """None when the linker could not run: a person checks by hand whether the child is known."""
    match_probability: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(VOCAB), default="open", server_default="open")
    decided_by: Mapped[str | None] = mapped_column(String(NAME))
    decided_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PersonMergeRow(Base):
    """One person merged into another, with exactly the rows re-pointed (so it can be undone)."""

    __tablename__ = "person_merges"
    __table_args__ = (Index(None, "from_person_id"), Index(None, "into_person_id"))

    merge_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    from_person_id: Mapped[str] = mapped_column(String(ID))
    into_person_id: Mapped[str] = mapped_column(String(ID))
    merged_at: Mapped[datetime]
    merged_by: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)
    moved: Mapped[dict[str, Any]]
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(NAME))


# --- multi-agency checks (issue 22, area A) ------------------------------------------------


class CheckRequestRow(Base):
    """A request for information to one agency about a referral's child, and its reply."""

    __tablename__ = "check_requests"
    __table_args__ = (
        Index(None, "referral_id", "requested_at"),
        Index(None, "agency", "replied_at", "due_at"),
    )

    request_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(ID), ForeignKey("referrals.referral_id"))
    agency: Mapped[str] = mapped_column(String(VOCAB))
    question: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime]
    requested_by: Mapped[str] = mapped_column(String(NAME))
    due_at: Mapped[datetime]
    replied_at: Mapped[datetime | None]
    reply_outcome: Mapped[str | None] = mapped_column(String(VOCAB))
    reply_summary: Mapped[str | None] = mapped_column(Text)
    replied_by: Mapped[str | None] = mapped_column(String(NAME))
    reply_channel: Mapped[str | None] = mapped_column(String(VOCAB))
    """``agency``: the agency's own API key; ``recorded``: a practitioner typed the reply in."""


class StrategyDiscussionRow(Base):
    """A strategy discussion about a referral: when, which agencies attended, what it decided."""

    __tablename__ = "strategy_discussions"
    __table_args__ = (Index(None, "referral_id", "held_at"),)

    discussion_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(ID), ForeignKey("referrals.referral_id"))
    held_at: Mapped[datetime]
    attendees: Mapped[list[Any]]
    """``[{"agency", "role"}]``: agencies and roles, never names."""
    outcome: Mapped[str] = mapped_column(String(VOCAB))
    summary: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(NAME))
    recorded_at: Mapped[datetime]


class CheckFactRow(Base):
    """One fact found out first hand (child seen, account corroborated...); the latest of a
    kind is the current answer, the earlier ones stay on record."""

    __tablename__ = "check_facts"
    __table_args__ = (Index(None, "referral_id", "kind", "recorded_at"),)

    fact_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(ID), ForeignKey("referrals.referral_id"))
    kind: Mapped[str] = mapped_column(String(VOCAB))
    value: Mapped[str] = mapped_column(String(VOCAB))
    note: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(NAME))
    recorded_at: Mapped[datetime]


class SignOffRow(Base):
    """A decision that needs a manager's sign-off before the referral leaves the queue."""

    __tablename__ = "sign_offs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('awaiting', 'signed_off', 'sent_back', 'superseded')", name="status"
        ),
        Index(None, "referral_id"),
        Index(None, "status", "requested_at"),
    )

    sign_off_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(ID), ForeignKey("referrals.referral_id"))
    decision_id: Mapped[int] = mapped_column(Integer, ForeignKey("decisions.id"))
    reasons: Mapped[list[str]]
    """Why sign-off is needed, in words (no personal data)."""
    status: Mapped[str] = mapped_column(String(VOCAB))
    requested_by: Mapped[str] = mapped_column(String(NAME))
    requested_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(NAME))
    decided_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)


class PriorityJudgementRow(Base):
    """A practitioner's own priority for a referral, recorded before the band was shown."""

    __tablename__ = "priority_judgements"
    __table_args__ = (UniqueConstraint("referral_id", "judged_by"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(String(ID), ForeignKey("referrals.referral_id"))
    judged_by: Mapped[str] = mapped_column(String(NAME))
    priority: Mapped[str] = mapped_column(String(VOCAB))
    judged_at: Mapped[datetime]


class TeamSettingRow(Base):
    """One setting of the front-door team (e.g. the decision mode), with who changed it last."""

    __tablename__ = "team_settings"

    name: Mapped[str] = mapped_column(String(VOCAB), primary_key=True)
    value: Mapped[str] = mapped_column(String(VOCAB))
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(NAME))


class MonitoringReportRow(Base):
    """A monitoring run's summary: when, on what, and the alerts it raised (aggregates only)."""

    __tablename__ = "monitoring_reports"
    __table_args__ = (Index(None, "generated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    generated_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(VOCAB))
    """``store`` (the service's own records) or ``extract`` (a back-test of an extract)."""
    model_version: Mapped[str | None] = mapped_column(String(NAME))
    alerts: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]]
    """Alert counts by kind, the alerts themselves, each signal's latest PSI, the months."""
