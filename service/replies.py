"""What the service answers (and the few request bodies ``triage.schema`` does not define)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.check_replies import SignOffOut
from triage.schema import Id, PlainText

Status = Literal["scored", "unscored"]
FreeText = Annotated[
    PlainText, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
]


class ReasonOut(BaseModel):
    """One signal's pull on the score, in words, with the records behind it."""

    signal: str
    value: float | None
    contribution: float
    direction: str
    sentence: str
    record_ids: list[str] = Field(
        description="The records behind the signal, the most recent 20 (oldest of them first)."
    )
    records_omitted: int = Field(
        default=0, description="Older records behind the signal that are not listed."
    )


class FlagOut(BaseModel):
    """A safety rule that fired, in words."""

    code: str
    words: str


class ScoreFields(BaseModel):
    """A score as people see it: band, probability with range, what is predicted, reasons."""

    status: Status
    band: str | None = None
    model_band: str | None = Field(
        default=None, description="The model's own band, before any safety rule raised it."
    )
    probability: float | None = None
    probability_low: float | None = None
    probability_high: float | None = None
    model_version: str | None = None
    outcome_words: str | None = Field(default=None, description="What the probability is of.")
    scored_at: datetime | None = None
    flags: list[FlagOut] = Field(default_factory=list)
    reasons: list[ReasonOut] = Field(default_factory=list)


class ResolutionOut(BaseModel):
    """How a referral's or an event's child was resolved to a person."""

    outcome: Literal["given", "linked", "possible_match", "new"] = Field(
        description="`given`: the referral named the child; `linked`: the details matched a "
        "known child; `possible_match`: stored against a new child while a person checks a "
        "possible match (`task_id`); `new`: a child the service did not know."
    )
    person_id: str = Field(description="The child the referral or event is stored against.")
    match_probability: float | None = Field(
        default=None, description="The best candidate's match probability, when there was one."
    )
    task_id: str | None = Field(
        default=None, description="The identity task a person decides, when one was opened."
    )


class IntakeReceipt(BaseModel):
    """The reply to a referral system's intake: its own receipt, nothing from other records.

    The band and due-by tell the sender how soon the front door will look; reasons, flags and
    probability read the child's history across agencies, which the sender did not send.
    """

    referral_id: str
    source_system: str
    source_referral_id: str
    received_at: datetime
    due_by: datetime
    status: Status
    band: str | None = None
    resolution: ResolutionOut | None = None


class ReferralAccepted(ScoreFields):
    """The reply to an intake: the referral's id, its score (or unscored), top 5 reasons.

    A referral system (an API key) gets only the ``IntakeReceipt`` fields of it.
    """

    referral_id: str
    source_system: str
    source_referral_id: str
    received_at: datetime
    due_by: datetime
    resolution: ResolutionOut | None = None


class OtherOpenReferral(BaseModel):
    """Another open referral about the same child."""

    referral_id: str
    band: str | None
    received_at: datetime
    concerns: list[str]
    ahead: bool = Field(description="Whether it is above this referral in the queue.")


class QueueItem(ScoreFields):
    """An open referral in the queue, with its top 3 reasons."""

    referral_id: str
    child_id: str
    received_at: datetime
    due_by: datetime
    overdue: bool
    waiting_hours: float
    age_months: int
    concerns: list[str]
    identity_to_confirm: bool = Field(
        default=False,
        description="The referral's child details contradict the stored child's: a person "
        "confirms who the child is before relying on the history.",
    )
    other_open_referrals: list[OtherOpenReferral] = Field(
        default_factory=list,
        description="The child's other open referrals, in queue order (the queue groups them).",
    )
    newer_records: int = Field(
        default=0,
        description="Records about the child known only after this referral arrived: its score "
        "counts only what was known before, so it leaves these out.",
    )
    outstanding_checks: int = Field(
        default=0, description="Requests for information to agencies not answered yet."
    )
    awaiting_sign_off: bool = Field(
        default=False,
        description="A decision is recorded and awaits a manager's sign-off (it stays queued).",
    )


class QueuePage(BaseModel):
    """One page of the queue, in order; pass ``next_cursor`` back for the next."""

    items: list[QueueItem]
    next_cursor: str | None
    outcome_words: str | None = Field(description="What the current model's probabilities are of.")
    generated_at: datetime


class ChildOut(BaseModel):
    """The child a referral is about."""

    child_id: str
    household_id: str
    given_name: str
    family_name: str
    date_of_birth: date
    sex: str
    ethnicity: str
    disability: bool
    deprivation_decile: int | None


class ReferralOut(BaseModel):
    """A stored referral."""

    referral_id: str
    source_system: str
    source_referral_id: str
    status: Literal["open", "decided"]
    received_at: datetime
    due_by: datetime
    child: ChildOut | None
    referrer: dict[str, str | None]
    concerns: list[str]
    injury: dict[str, Any]
    narrative: str
    synthetic: bool
    identity_mismatch: list[str] | None = Field(
        default=None,
        description="Fields (given_name, family_name, date_of_birth) in which the child as this "
        "referral sent it contradicts the stored child; null when they agree.",
    )
    child_as_sent: dict[str, Any] | None = Field(
        default=None, description="The child as this referral sent it, when it contradicts."
    )


class DecisionOut(BaseModel):
    """A recorded decision."""

    decision_id: int
    referral_id: str
    decision: str
    agreement: str | None
    reason_codes: list[str]
    rationale: str | None
    decided_at: datetime
    decided_by: str | None
    priority: str | None = Field(
        default=None, description="The practitioner's own priority; agreement is derived from it."
    )
    priority_before_band: bool | None = Field(
        default=None, description="Whether the priority was given before the band was shown."
    )


class DecisionRecorded(DecisionOut):
    """The reply to a decision: what was recorded and the score it was made against."""

    band_at_decision: str | None
    model_version_at_decision: str | None
    sign_off: SignOffOut | None = None
    """Set when the decision awaits a manager's sign-off (the referral stays in the queue)."""


class ScoreSummary(BaseModel):
    """A score in a what-if: probability, range, band, safety rules met, top reasons."""

    probability: float
    probability_low: float
    probability_high: float
    band: str
    model_band: str
    flags: list[FlagOut] = Field(default_factory=list)
    reasons: list[ReasonOut]


class WhatIfOut(BaseModel):
    """The referral scored as stored and again without the disputed record."""

    model_version: str
    outcome_words: str
    before: ScoreSummary
    after: ScoreSummary
    probability_change: float
    band_changed: bool
    record_behind_score: bool = Field(
        description="False when no signal used the disputed record, so leaving it out changes "
        "nothing."
    )


class DisputeIn(BaseModel):
    """A practitioner disputes one record behind a score (e.g. wrongly linked to the family)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"record_id": "E-19", "reason": "This incident is about another family."}]
        },
    )

    record_id: Id
    reason: FreeText


class DisputeOut(BaseModel):
    """A stored dispute and its what-if (None when no model was loaded)."""

    dispute_id: int
    referral_id: str
    record_id: str
    reason: str
    disputed_by: str
    disputed_at: datetime
    what_if: WhatIfOut | None
    note: str | None = None


class ReopenIn(BaseModel):
    """Why a decided referral goes back in the queue."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"reason": "New information from the school."}]},
    )

    reason: FreeText


class TimelineItem(BaseModel):
    """One record in the child's history across agencies."""

    record_id: str
    kind: Literal["referral", "event", "decision", "check", "strategy", "fact"] = Field(
        description="`check`, `strategy` and `fact`: the front door's own work (a request for "
        "information or its reply, a strategy discussion, a recorded fact)."
    )
    at: datetime
    agency: str | None = None
    event_kind: str | None = None
    referrer_type: str | None = None
    concerns: list[str] | None = None
    injury_reported: bool | None = None
    decision: str | None = None
    person_id: str | None = Field(default=None, description="The adult an event is about.")
    words: str | None = Field(default=None, description="The front door's work in words.")
    referral_id: str | None = Field(
        default=None, description="The referral the front door's work was recorded on."
    )
    this_referral: bool = False
    signals: list[str] = Field(
        default_factory=list, description="Signals of the current score that used this record."
    )


class MembershipOut(BaseModel):
    """A person's time in a household: the role, from when, until when (null: lives there)."""

    membership_id: str
    household_id: str
    role: str
    joined_at: datetime
    left_at: datetime | None
    signals: list[str] = Field(
        default_factory=list, description="Signals of the current score that used it."
    )


class PersonRecordOut(BaseModel):
    """An agency's record about an adult (police, probation, MARAC, health, care proceedings)."""

    record_id: str
    at: datetime
    agency: str
    event_kind: str
    household_id: str | None
    signals: list[str] = Field(
        default_factory=list, description="Signals of the current score that used it."
    )


class HouseholdMember(BaseModel):
    """A person in the panel: their details, time in the household and (adults) records."""

    person_id: str
    is_child: bool
    given_name: str | None
    family_name: str | None
    date_of_birth: date | None
    sex: str
    lives_here_now: bool
    memberships: list[MembershipOut]
    records: list[PersonRecordOut] = Field(
        description="The adult's most recent records about them, oldest first (none for a child)."
    )
    records_omitted: int = Field(description="Older records about the person, not listed.")
    signals: list[str] = Field(
        default_factory=list,
        description="Signals of the current score that used this person's records.",
    )


class KnownMemberOut(BaseModel):
    """Someone the referral says lives with the child: as sent, not a verified membership."""

    given_name: str | None
    family_name: str | None
    role: str | None
    date_of_birth: date | None
    person_id: str | None
    matches_member: bool = Field(
        description="The person_id is one of the people the panel shows from the records."
    )


class HouseholdOut(BaseModel):
    """Who lives here: the referral's household from the records, and as the referrer knows it."""

    household_id: str
    members: list[HouseholdMember] = Field(
        description="Everyone with a membership of the household: who lives there now first."
    )
    others_behind_reasons: list[HouseholdMember] = Field(
        description="People whose records the score used who never lived in this household "
        "(e.g. in the child's earlier household), with their memberships elsewhere."
    )
    known_to_referrer: list[KnownMemberOut]
    records_limit: int = Field(description="Records listed per person at most.")
    earlier_members_not_shown: int = Field(
        0,
        description="People who left the household more than earlier_members_years before the "
        "referral and whose records the score did not use: counted, not listed.",
    )
    earlier_members_years: int = 2


class ModelLimits(BaseModel):
    """What the model reads and what it never sees: the same text wherever a score appears."""

    reads: list[str]
    never_sees: list[str]
    summary: str


class ReferralDetail(BaseModel):
    """A referral with its latest score (every reason), decisions, disputes and timeline."""

    referral: ReferralOut
    score: ScoreFields
    decisions: list[DecisionOut]
    disputes: list[DisputeOut]
    timeline: list[TimelineItem]
    timeline_truncated: bool
    history_through: datetime | None = Field(
        description="Time of the newest record in the child's history: how fresh the data is."
    )
    model_does_not_know: ModelLimits
    household: HouseholdOut | None = Field(
        default=None,
        description="Who lives here (members, roles, joined and left, each adult's records); "
        "null for a caller whose role may not see it.",
    )


class EventResult(BaseModel):
    """What happened to one event of a batch."""

    index: int
    event_id: str
    source_system: str
    source_event_id: str
    status: Literal["created", "duplicate"]
    resolution: ResolutionOut | None = Field(
        default=None,
        description="How the event's child was resolved, when the event sent the child's "
        "details (`child`) rather than only an id.",
    )


class EventsReceipt(BaseModel):
    """The reply to a referral system's events: its own events only."""

    created: int
    duplicates: int
    items: list[EventResult]


class EventsAccepted(EventsReceipt):
    """The reply to an events post: per item, and the referrals rescored.

    A referral system (an API key) gets only the ``EventsReceipt`` fields: the referrals its
    events moved may be other systems' and other children's.
    """

    rescored: list[str] = Field(
        default_factory=list,
        description="Open referrals the events moved (left out of a referral system's reply).",
    )
    not_rescored: list[str] = Field(
        default_factory=list, description="Affected referrals left as they were (no model)."
    )


class ModelInfo(BaseModel):
    """The champion model, or why there is none."""

    status: Literal["loaded", "no_model"]
    version: str | None = None
    family: str | None = None
    outcome: str | None = None
    outcome_words: str | None = None
    catalogue_version: str | None = None
    signals: list[str] = Field(default_factory=list)
    bands: dict[str, Any] | None = None
    safety_rules: list[dict[str, Any]]
    card: dict[str, Any] | None = None
    gates: dict[str, Any] | None = None
    loaded_at: datetime | None = None
    last_error: str | None = None


class ReloadOut(BaseModel):
    """The reply to a reload: the model now in use, and the backlog scored with it."""

    reloaded: bool
    model: ModelInfo
    queued: int
    scored: int
    failed: int
    remaining: int


# --- researchers: no names, no free text, no raw ids --------------------------------------------


class ResearchReferral(BaseModel):
    """A referral as researchers see it: keyed pseudonyms, month of receipt, no free text.

    No protected attributes or age either: joined to decisions, they would undo the small-count
    suppression of ``/v1/research/decisions``, which is where groups are compared.
    """

    model_config = ConfigDict(extra="forbid")

    referral: str = Field(description="Keyed pseudonym of the referral.")
    child: str = Field(description="Keyed pseudonym of the child (stable across referrals).")
    household: str = Field(description="Keyed pseudonym of the household.")
    received_month: str = Field(description="Year and month of receipt, e.g. 2026-04.")
    referrer_type: str
    concerns: list[str]
    injury_reported: bool
    status: Literal["open", "decided"]
    band: str | None
    probability: float | None = Field(description="Rounded to 3 decimals.")
    model_version: str | None
    safety_flagged: bool
    decision: str | None
    agreement: str | None
    reason_codes: list[str] = Field(
        description="Signal names and the general codes; anything else reads `other`."
    )


class ResearchReferralPage(BaseModel):
    """One page of pseudonymised referrals, in order of receipt."""

    items: list[ResearchReferral]
    total: int
    offset: int
    limit: int


class DecisionGroupRow(BaseModel):
    """Decisions in one group and band; every count is null when any is under ``min_count``."""

    group: str
    band: str
    suppressed: bool
    decisions: int | None
    agree: int | None
    should_be_higher: int | None
    should_be_lower: int | None


class ResearchDecisions(BaseModel):
    """Human decisions by group and band in one calendar quarter, small cells suppressed."""

    by: str
    quarter: str
    min_count: int
    rows: list[DecisionGroupRow]


class FieldComparison(BaseModel):
    """One identifying field: the incoming details beside the candidate's, and the evidence."""

    field: str
    label: str
    incoming: str | None
    candidate: str | None
    evidence: str = Field(description="The linker's word for the field: exact, close, differs...")
    words: str = Field(description="The evidence in plain words.")


class IdentityTaskOut(BaseModel):
    """A "possible same person" task, with the evidence side by side."""

    task_id: str
    status: Literal["open", "confirmed", "rejected"]
    referral_id: str | None = Field(description="The referral that opened the task, if one did.")
    event_id: str | None = Field(
        default=None, description="The agency event that opened the task, if one did."
    )
    record_id: str
    person_id: str | None = Field(
        description="The new child the referral or event was stored against."
    )
    candidate_person_id: str | None = Field(
        description="The known child it may be (None: the linker was unavailable, check by hand)."
    )
    match_probability: float | None
    linker_unavailable: bool
    comparison: list[FieldComparison]
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    merge_id: str | None = Field(description="The merge a confirmation made.")
    merge_undone: bool


class IdentityTaskList(BaseModel):
    """Identity tasks, oldest first."""

    items: list[IdentityTaskOut]


class TaskDecisionIn(BaseModel):
    """Why the practitioner decided as they did (required for confirming and rejecting alike)."""

    model_config = ConfigDict(extra="forbid")

    note: FreeText


class TaskDecided(BaseModel):
    """A decided task, the merge a confirmation made, and the referrals rescored after it."""

    task: IdentityTaskOut
    merge_id: str | None
    rescored: list[str]
    not_rescored: list[str]


class UndoMergeIn(BaseModel):
    """Why the merge is undone."""

    model_config = ConfigDict(extra="forbid")

    reason: FreeText


class MergeUndone(BaseModel):
    """A merge undone: the rows it had moved are back, and the referrals rescored."""

    merge_id: str
    from_person_id: str
    into_person_id: str
    merged_at: datetime
    merged_by: str
    undone_at: datetime | None
    undone_by: str | None
    moved: dict[str, Any]
    task_id: str | None
    rescored: list[str]
    not_rescored: list[str]
