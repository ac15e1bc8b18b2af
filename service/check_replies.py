"""What the checks routes answer: requests and replies, discussions, facts, sign-offs."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class ReplyOut(BaseModel):
    """An agency's reply to a request for information."""

    outcome: str
    outcome_words: str
    summary: str
    replied_at: datetime
    replied_by: str | None
    channel: str | None
    """``agency``: through the agency's own API key; ``recorded``: typed in by a practitioner."""
    late: bool


class CheckRequestOut(BaseModel):
    """A request for information with its state (``awaiting``, ``overdue`` or ``replied``)."""

    request_id: str
    referral_id: str
    agency: str
    agency_words: str
    question: str
    requested_at: datetime
    requested_by: str
    due_at: datetime
    state: str
    reply: ReplyOut | None


class ChildToFind(BaseModel):
    """What an agency needs to find the child in its own records."""

    given_name: str | None
    family_name: str | None
    date_of_birth: date | None


class AgencyRequestOut(CheckRequestOut):
    """A request an agency's key may answer, with the child to look for."""

    child: ChildToFind


class AgencyWorklist(BaseModel):
    """The unanswered requests to the key's agencies, soonest due first."""

    items: list[AgencyRequestOut]


class AttendeeOut(BaseModel):
    """An agency at a strategy discussion."""

    agency: str
    agency_words: str
    role: str | None


class StrategyDiscussionOut(BaseModel):
    """A recorded strategy discussion."""

    discussion_id: str
    referral_id: str
    held_at: datetime
    attendees: list[AttendeeOut]
    outcome: str
    outcome_words: str
    summary: str
    recorded_by: str
    recorded_at: datetime


class FactOut(BaseModel):
    """A fact found out first hand."""

    fact_id: str
    referral_id: str
    kind: str
    value: str
    words: str
    note: str | None
    occurred_at: datetime
    recorded_by: str
    recorded_at: datetime


class FactsRecorded(BaseModel):
    """The facts just stored."""

    facts: list[FactOut]


class SignOffOut(BaseModel):
    """A decision held for a manager's sign-off (``awaiting``, ``signed_off``, ``sent_back``)."""

    sign_off_id: str
    referral_id: str
    decision_id: int
    reasons: list[str]
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


class AwaitingSignOffOut(SignOffOut):
    """A held decision as a manager sees it in the sign-off list."""

    decision: str
    rationale: str | None
    received_at: datetime
    concerns: list[str]


class SignOffList(BaseModel):
    """Decisions awaiting sign-off, oldest first."""

    items: list[AwaitingSignOffOut]


class ChecksOut(BaseModel):
    """Everything checked about a referral, and how many requests await a reply."""

    referral_id: str
    requests: list[CheckRequestOut]
    outstanding: int
    overdue: int
    strategy_discussions: list[StrategyDiscussionOut]
    facts: list[FactOut]
    current_facts: dict[str, FactOut]
    sign_offs: list[SignOffOut]
    generated_at: datetime
