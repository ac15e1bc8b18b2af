"""Multi-agency checks: their vocabularies and the shapes a caller sends (closed, validated).

A front door checks what other agencies know (requests for information), holds strategy
discussions, and records what it found out first hand (the child seen and spoken to, the
parent's or carer's account and whether others corroborate it, the referrer contacted back).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from triage.schema import Name, PlainText
from triage.vocab import Agency

MAX_QUESTION_CHARS = 2_000
MAX_SUMMARY_CHARS = 5_000
MAX_NOTE_CHARS = 2_000
MAX_DUE_DAYS = 14
"""A request for information is due within two weeks at most."""
DEFAULT_DUE_HOURS = 24
"""When the caller names no due time: a working day, as front doors usually ask."""
FUTURE_TOLERANCE = timedelta(minutes=5)
"""Clock skew allowed before a time that has "happened" is refused as in the future."""


class CheckAgency(StrEnum):
    """Agencies a front door asks for information."""

    police = "police"
    health = "health"
    school = "school"
    gp = "gp"
    housing = "housing"


KEY_AGENCY: dict[CheckAgency, Agency] = {
    CheckAgency.police: Agency.police,
    CheckAgency.health: Agency.health,
    CheckAgency.school: Agency.school,
    CheckAgency.gp: Agency.health,  # GP practices share through the health feed
    CheckAgency.housing: Agency.housing,
}
"""The agency an API key must report for to answer a request to each check agency."""

AGENCY_WORDS: dict[str, str] = {
    "police": "Police",
    "health": "Health (community and hospital)",
    "school": "School",
    "gp": "GP practice",
    "housing": "Housing",
    "social_care": "Children's social care",
    "other": "Another agency",
}


class ReplyOutcome(StrEnum):
    """What an agency's reply says, in one word before its summary."""

    not_known = "not_known"
    known_no_concerns = "known_no_concerns"
    known_with_concerns = "known_with_concerns"


REPLY_WORDS: dict[str, str] = {
    "not_known": "Not known to the agency",
    "known_no_concerns": "Known, no current concerns",
    "known_with_concerns": "Known, with concerns",
}


class StrategyAgency(StrEnum):
    """Agencies that attend a strategy discussion."""

    social_care = "social_care"
    police = "police"
    health = "health"
    gp = "gp"
    school = "school"
    housing = "housing"
    other = "other"


REQUIRED_AT_STRATEGY: tuple[StrategyAgency, ...] = (
    StrategyAgency.social_care,
    StrategyAgency.police,
    StrategyAgency.health,
)
"""Working Together (2023): a strategy discussion involves social care, police and health."""


class StrategyOutcome(StrEnum):
    """What a strategy discussion decided."""

    section_47_enquiry = "section_47_enquiry"
    child_and_family_assessment = "child_and_family_assessment"
    further_strategy_discussion = "further_strategy_discussion"
    no_further_action = "no_further_action"


STRATEGY_WORDS: dict[str, str] = {
    "section_47_enquiry": "Section 47 enquiry",
    "child_and_family_assessment": "Child and family assessment",
    "further_strategy_discussion": "Another strategy discussion",
    "no_further_action": "No further action",
}


class FactKind(StrEnum):
    """Facts a practitioner records first hand."""

    child_seen = "child_seen"
    child_seen_alone = "child_seen_alone"
    child_spoken_to = "child_spoken_to"
    carer_account = "carer_account"
    referrer_contacted = "referrer_contacted"


class Corroboration(StrEnum):
    """Whether what others say bears out the parent's or carer's account."""

    corroborated = "corroborated"
    partly_corroborated = "partly_corroborated"
    not_corroborated = "not_corroborated"
    not_yet_tested = "not_yet_tested"


YES_NO = ("yes", "no")
FACT_VALUES: dict[FactKind, tuple[str, ...]] = {
    FactKind.child_seen: YES_NO,
    FactKind.child_seen_alone: YES_NO,
    FactKind.child_spoken_to: YES_NO,
    FactKind.carer_account: tuple(Corroboration),
    FactKind.referrer_contacted: YES_NO,
}
FACT_WORDS: dict[str, dict[str, str]] = {
    "child_seen": {"yes": "Child seen", "no": "Child not seen"},
    "child_seen_alone": {"yes": "Child seen alone", "no": "Child not seen alone"},
    "child_spoken_to": {"yes": "Child spoken to", "no": "Child not spoken to"},
    "carer_account": {
        "corroborated": "Parent's or carer's account: others corroborate it",
        "partly_corroborated": "Parent's or carer's account: others partly corroborate it",
        "not_corroborated": "Parent's or carer's account: others do not corroborate it",
        "not_yet_tested": "Parent's or carer's account: not yet tested against others",
    },
    "referrer_contacted": {
        "yes": "Referrer contacted back",
        "no": "Referrer not contacted back",
    },
}
FACT_QUESTIONS: dict[str, str] = {
    "child_seen": "Has the child been seen?",
    "child_seen_alone": "Was the child seen alone?",
    "child_spoken_to": "Has the child been spoken to?",
    "carer_account": "Do others corroborate the parent's or carer's account?",
    "referrer_contacted": "Has the referrer been contacted back?",
}


class SignOffVerdict(StrEnum):
    """A manager's answer to a decision awaiting sign-off."""

    sign_off = "sign_off"
    send_back = "send_back"


SIGN_OFF_STATUSES = ("awaiting", "signed_off", "sent_back", "superseded")
"""``superseded``: a manager reopened the referral and it was decided again."""


def _aware(value: datetime) -> datetime:
    """Refuse a time without a UTC offset; return it in UTC."""
    if value.tzinfo is None:
        raise PydanticCustomError("timezone", "needs a UTC offset (for example Z or +01:00)")
    return value.astimezone(UTC)


AwareTime = Annotated[datetime, AfterValidator(_aware)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


class _Closed(BaseModel):
    """Base: unknown fields refused, text stripped, immutable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class CheckRequestIn(_Closed):
    """A request for information to one agency about a referral's child."""

    agency: CheckAgency
    question: Annotated[PlainText, AfterValidator(_not_blank)] = Field(
        max_length=MAX_QUESTION_CHARS, description="What the front door asks the agency."
    )
    due_at: AwareTime | None = Field(
        default=None,
        description=f"When the reply is due (default {DEFAULT_DUE_HOURS} hours from now; "
        f"at most {MAX_DUE_DAYS} days ahead).",
    )


class CheckReplyIn(_Closed):
    """An agency's reply to a request for information (sent by the agency or recorded)."""

    outcome: ReplyOutcome
    summary: PlainText = Field(default="", max_length=MAX_SUMMARY_CHARS, validate_default=True)

    @field_validator("summary")
    @classmethod
    def _summary_with_concerns(cls, value: str, info: ValidationInfo) -> str:
        """A reply that reports concerns says what they are."""
        if info.data.get("outcome") == ReplyOutcome.known_with_concerns and not value.strip():
            raise PydanticCustomError(
                "summary_required", "say what the concerns are when the outcome reports concerns"
            )
        return value


class Attendee(_Closed):
    """One agency at a strategy discussion, with the attendee's role (never a name)."""

    agency: StrategyAgency
    role: Name | None = Field(default=None, description="e.g. 'Detective Sergeant'.")


class StrategyDiscussionIn(_Closed):
    """A strategy discussion: when, who attended by agency, what it decided."""

    held_at: AwareTime
    attendees: list[Attendee] = Field(min_length=1, max_length=20)
    outcome: StrategyOutcome
    summary: PlainText = Field(default="", max_length=MAX_SUMMARY_CHARS)

    @field_validator("attendees")
    @classmethod
    def _required_agencies(cls, value: list[Attendee]) -> list[Attendee]:
        """Social care, police and health at least (Working Together 2023)."""
        present = {attendee.agency for attendee in value}
        missing = [str(agency) for agency in REQUIRED_AT_STRATEGY if agency not in present]
        if missing:
            raise PydanticCustomError(
                "agencies_missing",
                "a strategy discussion needs social care, police and health; missing: {missing}",
                {"missing": ", ".join(missing)},
            )
        return value

    @field_validator("held_at")
    @classmethod
    def _not_future(cls, value: datetime) -> datetime:
        """A discussion is recorded once it has been held."""
        if value > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise PydanticCustomError("future", "is in the future: record a discussion once held")
        return value


class FactIn(_Closed):
    """One fact found out first hand, with when it happened."""

    kind: FactKind
    value: str = Field(max_length=40, description="yes or no; for carer_account a Corroboration.")
    occurred_at: AwareTime | None = Field(default=None, description="Default: now.")
    note: PlainText = Field(
        default="",
        max_length=MAX_NOTE_CHARS,
        validate_default=True,
        description="For the parent's or carer's account: the account, briefly.",
    )

    @field_validator("value")
    @classmethod
    def _value_fits_kind(cls, value: str, info: ValidationInfo) -> str:
        """The value is one the kind allows."""
        kind = info.data.get("kind")
        if kind is None:
            return value  # the kind's own error is reported
        allowed = FACT_VALUES[kind]
        if value not in allowed:
            raise PydanticCustomError(
                "fact_value",
                "{kind} takes one of: {allowed}",
                {"kind": str(kind), "allowed": ", ".join(allowed)},
            )
        return value

    @field_validator("occurred_at")
    @classmethod
    def _not_future(cls, value: datetime | None) -> datetime | None:
        """A fact is recorded once it has happened."""
        if value is not None and value > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise PydanticCustomError("future", "is in the future")
        return value

    @field_validator("note")
    @classmethod
    def _account_in_words(cls, value: str, info: ValidationInfo) -> str:
        """The parent's or carer's account is summarised, not only graded."""
        if info.data.get("kind") is FactKind.carer_account and not value.strip():
            raise PydanticCustomError("note_required", "summarise the account")
        return value


class FactsIn(_Closed):
    """Several facts at once (each kind at most once)."""

    facts: list[FactIn] = Field(min_length=1, max_length=len(FactKind))

    @field_validator("facts")
    @classmethod
    def _each_kind_once(cls, value: list[FactIn]) -> list[FactIn]:
        """A kind named twice in one batch is ambiguous."""
        kinds = [fact.kind for fact in value]
        repeated = sorted({str(kind) for kind in kinds if kinds.count(kind) > 1})
        if repeated:
            raise PydanticCustomError(
                "repeated_kind", "names {kinds} more than once", {"kinds": ", ".join(repeated)}
            )
        return value


class SignOffIn(_Closed):
    """A manager signs off a decision or sends it back (a note is needed to send it back)."""

    verdict: SignOffVerdict
    note: PlainText = Field(default="", max_length=MAX_NOTE_CHARS, validate_default=True)

    @field_validator("note")
    @classmethod
    def _note_to_send_back(cls, value: str, info: ValidationInfo) -> str:
        """The practitioner is told why their decision came back."""
        if info.data.get("verdict") == SignOffVerdict.send_back and not value.strip():
            raise PydanticCustomError("note_required", "say why the decision is sent back")
        return value


def due_time(due_at: datetime | None, *, now: datetime) -> datetime:
    """The due time of a new request: as asked, or ``DEFAULT_DUE_HOURS`` from ``now``."""
    return due_at if due_at is not None else now + timedelta(hours=DEFAULT_DUE_HOURS)


def due_problem(due_at: datetime, *, now: datetime) -> str | None:
    """Why a due time cannot be used (None: it can)."""
    if due_at <= now:
        return "is not in the future"
    if due_at > now + timedelta(days=MAX_DUE_DAYS):
        return f"is more than {MAX_DUE_DAYS} days ahead"
    return None
