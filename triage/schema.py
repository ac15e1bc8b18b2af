"""Pydantic v2 models for the intake contract: referrals, agency events, decisions and outcomes."""

from __future__ import annotations

import re
from collections.abc import Hashable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from triage.vocab import (
    ADULT_ROLES,
    EVENT_AGENCY,
    MEMBERSHIP_EVENT_KINDS,
    PERSON_EVENT_KINDS,
    PRIORITY_BANDS,
    Agency,
    Concern,
    DecisionKind,
    Ethnicity,
    EventKind,
    HouseholdRole,
    InjurySite,
    OutcomeLevel,
    PlanCategory,
    Priority,
    ReferrerRelationship,
    ReferrerType,
    Sex,
)

__all__ = [
    "EARLIEST_BIRTH",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_VALUE_CHARS",
    "MAX_CLOCK_SKEW",
    "MAX_KNOWN_MEMBERS",
    "MAX_NARRATIVE_CHARS",
    "MAX_RATIONALE_CHARS",
    "PERSON_OPTIONAL_KINDS",
    "REFERRAL_EXAMPLE",
    "AgencyEventIn",
    "AttributeKey",
    "BandAgreement",
    "Child",
    "DecisionIn",
    "Id",
    "Injury",
    "KnownMember",
    "Name",
    "NhsNumber",
    "OutcomeIn",
    "PersonDetails",
    "PlainText",
    "Postcode",
    "ReasonCode",
    "ReferralIn",
    "Referrer",
    "derive_agreement",
    "error_fields",
    "nhs_number_valid",
]

MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_BIRTH = date(1900, 1, 1)
"""Dates of birth before this are refused: a typing slip, not a child."""
MAX_NARRATIVE_CHARS = 20_000
MAX_RATIONALE_CHARS = 5_000
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_VALUE_CHARS = 500
MAX_KNOWN_MEMBERS = 20
"""Household members a referral may list: a large household, not a list of everyone known."""

# A calendar date has begun somewhere once UTC+14 (Line Islands) reaches it, so a date of birth
# is only "in the future" if it has not started anywhere; this avoids rejecting a same-day birth
# recorded in a zone ahead of the server's.
_MAX_UTC_OFFSET = timedelta(hours=14)

Id = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
    ),
]
"""Opaque identifier: 1–64 chars, starting alphanumeric, then alphanumerics and ``._:-``."""

# Bidirectional formatting characters reorder what a reader sees (a name or narrative could
# display differently from what is stored and searched); C0/C1 controls have no place in text
# a person reads. Tab and line breaks stay allowed in multi-line text.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_LINE_BREAKS = frozenset("\t\n\r")


def _refused_character(value: str, *, multiline: bool) -> tuple[int, str] | None:
    """The first control or bidi formatting character in ``value`` (position, U+code), if any."""
    for position, char in enumerate(value):
        code = ord(char)
        if multiline and char in _LINE_BREAKS:
            continue
        if (
            code < 0x20
            or 0x7F <= code <= 0x9F
            or char in _BIDI_CONTROLS
            or code in (0x2028, 0x2029)
        ):
            return position, f"U+{code:04X}"
    return None


def _check_text(value: str, *, multiline: bool) -> str:
    found = _refused_character(value, multiline=multiline)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "contains a control or bidirectional formatting character ({code}) at position "
            "{position}; send plain text",
            {"code": found[1], "position": found[0]},
        )
    return value


def _single_line(value: str) -> str:
    """Reject control and bidi formatting characters, line breaks included."""
    return _check_text(value, multiline=False)


def _multi_line(value: str) -> str:
    """Reject control and bidi formatting characters; tab and line breaks are allowed."""
    return _check_text(value, multiline=True)


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_single_line),
]
"""Personal name part: 1–100 chars after stripping, no control or bidi formatting characters."""

PlainText = Annotated[str, AfterValidator(_multi_line)]
"""Free text a person reads: no control or bidi formatting characters (tab, newlines allowed)."""

ReasonCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$"),
]
"""Short snake_case reason code."""

AttributeKey = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_single_line),
]
"""Key of a free-form agency event attribute."""

AttributeValue = str | int | float | bool | None

_H = TypeVar("_H", bound=Hashable)


def _no_duplicates(items: list[_H]) -> list[_H]:
    """Reject a list that repeats an item."""
    seen: set[_H] = set()
    dupes: set[_H] = set()
    for item in items:
        if item in seen:
            dupes.add(item)
        seen.add(item)
    if dupes:
        raise PydanticCustomError(
            "duplicate_items",
            "duplicate values are not allowed: {duplicates}",
            {"duplicates": ", ".join(sorted(str(d) for d in dupes))},
        )
    return items


def _to_utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC."""
    return value.astimezone(UTC)


def _not_ahead_of_now(value: datetime) -> datetime:
    """Reject a timestamp more than ``MAX_CLOCK_SKEW`` ahead of the current time."""
    if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise PydanticCustomError(
            "datetime_too_far_in_future",
            "timestamp is more than {minutes} minutes in the future",
            {"minutes": int(MAX_CLOCK_SKEW.total_seconds() // 60)},
        )
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_to_utc), AfterValidator(_not_ahead_of_now)]
"""Time-zone-aware timestamp, normalised to UTC, not beyond the allowed clock skew."""


def _plausible_birth(value: date) -> date:
    """Reject a date of birth that has not begun in any time zone, or before ``EARLIEST_BIRTH``."""
    if value > (datetime.now(UTC) + _MAX_UTC_OFFSET).date():
        raise PydanticCustomError("date_in_future", "date of birth cannot be in the future")
    if value < EARLIEST_BIRTH:
        raise PydanticCustomError(
            "date_too_early",
            "date of birth cannot be before {earliest}",
            {"earliest": EARLIEST_BIRTH.isoformat()},
        )
    return value


BirthDate = Annotated[date, AfterValidator(_plausible_birth)]
"""A date of birth that has begun somewhere and is not before ``EARLIEST_BIRTH``."""


class _Contract(BaseModel):
    """Base for intake models: closed, stripped and immutable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


def nhs_number_valid(digits: str) -> bool:
    """Whether ten digits end in their NHS modulus-11 check digit."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    remainder = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    check = 11 - remainder
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def _nhs_number(value: str) -> str:
    """Ten digits (spaces allowed between groups) with a valid modulus-11 check digit."""
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        raise PydanticCustomError("nhs_number_shape", "an NHS number is 10 digits")
    if not nhs_number_valid(digits):
        raise PydanticCustomError(
            "nhs_number_check_digit", "the NHS number's check digit does not match (modulus 11)"
        )
    return digits


_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$")


def _postcode(value: str) -> str:
    """A UK-shaped postcode, upper case with one space before the inward code."""
    match = _POSTCODE.match(value.upper())
    if match is None:
        raise PydanticCustomError(
            "postcode_shape", "a postcode looks like 'LS1 4AP': outward code, space, inward code"
        )
    return f"{match.group(1)} {match.group(2)}"


NhsNumber = Annotated[str, StringConstraints(max_length=12), AfterValidator(_nhs_number)]
"""An NHS number: 10 digits ending in its modulus-11 check digit (stored without spaces)."""
Postcode = Annotated[str, StringConstraints(max_length=10), AfterValidator(_postcode)]
"""A UK-shaped postcode, normalised to upper case with one space."""


class ChildDetails(_Contract):
    """What identifies a child: the details the service resolves to a known child, or not."""

    given_name: Name
    family_name: Name
    date_of_birth: date
    sex: Sex
    nhs_number: NhsNumber | None = None
    postcode: Postcode | None = None
    school: Name | None = Field(default=None, description="School name or URN, where known.")

    @field_validator("date_of_birth")
    @classmethod
    def _dob_not_future(cls, value: date) -> date:
        """Reject a date of birth that has not yet begun in any time zone."""
        return _plausible_birth(value)


class Child(ChildDetails):
    """The child a referral concerns: by id, or by details the service resolves."""

    child_id: Id | None = Field(
        default=None,
        description="The child's id when the sender knows it. Without it the service resolves "
        "the child from the details (names, date of birth, sex; NHS number, postcode and "
        "school help) and the reply's `resolution` says how.",
    )
    household_id: Id | None = Field(
        default=None,
        description="Required with `child_id`. Without it: a linked child's current household, "
        "or a new household for a new child.",
    )
    ethnicity: Ethnicity = Ethnicity.not_stated
    disability: bool = False
    deprivation_decile: Annotated[int, Field(ge=1, le=10)] | None = None

    @model_validator(mode="after")
    def _household_with_id(self) -> Self:
        """Require household_id when child_id is given (the resolved form of the contract)."""
        if self.child_id is not None and self.household_id is None:
            raise _located(
                self,
                [
                    (
                        ("household_id",),
                        PydanticCustomError(
                            "household_required",
                            "household_id is required when child_id is given",
                        ),
                        None,
                    )
                ],
            )
        return self


class Referrer(_Contract):
    """Who made the referral."""

    type: ReferrerType
    relationship: ReferrerRelationship | None = None
    referrer_id: Id | None = None


class Injury(_Contract):
    """Whether an injury was reported, and where."""

    reported: bool
    sites: Annotated[list[InjurySite], AfterValidator(_no_duplicates)] = Field(
        default_factory=list, max_length=5
    )
    photographed: bool = False

    @field_validator("sites")
    @classmethod
    def _sites_need_report(cls, value: list[InjurySite], info: ValidationInfo) -> list[InjurySite]:
        """Reject injury sites when no injury is reported."""
        if value and info.data.get("reported") is False:
            raise PydanticCustomError(
                "sites_without_injury", "injury sites given but no injury is reported"
            )
        return value


class KnownMember(_Contract):
    """Someone the referrer says lives with the child: kept as sent, never a verified member."""

    given_name: Name
    family_name: Name | None = None
    role: HouseholdRole
    date_of_birth: BirthDate | None = None
    person_id: Id | None = Field(
        default=None,
        description="The person's id as agencies' events name them, when the referrer knows it.",
    )


class PersonDetails(_Contract):
    """An adult's details, sent with the ``adult_joined_household`` event that first names them."""

    given_name: Name
    family_name: Name
    date_of_birth: BirthDate | None = None
    sex: Sex = Sex.unknown


REFERRAL_EXAMPLE: dict[str, Any] = {
    "source_system": "police-mash-feed",
    "source_referral_id": "WMP-2026-004512",
    "received_at": "2026-04-18T10:12:00Z",
    "child": {
        "child_id": "C-1042",
        "household_id": "H-311",
        "given_name": "Sam",
        "family_name": "Doe",
        "date_of_birth": "2014-06-01",
        "sex": "male",
        "ethnicity": "white",
        "disability": False,
        "deprivation_decile": 3,
    },
    "referrer": {"type": "individual", "relationship": "relative", "referrer_id": "P-77"},
    "concerns": ["physical_abuse"],
    "injury": {"reported": True, "sites": ["torso_back"], "photographed": True},
    "narrative": "Uncle reports photographs of bruising to the child's back.",
}
"""Binding example of a referral payload (shown in the API docs)."""


class ReferralIn(_Contract):
    """A referral as received at the front door."""

    model_config = ConfigDict(json_schema_extra={"examples": [REFERRAL_EXAMPLE]})

    source_system: Id
    source_referral_id: Id
    received_at: Timestamp
    child: Child
    referrer: Referrer
    concerns: Annotated[
        list[Concern], Field(min_length=1, max_length=len(Concern)), AfterValidator(_no_duplicates)
    ]
    injury: Injury = Injury(reported=False)
    narrative: PlainText = Field(default="", max_length=MAX_NARRATIVE_CHARS)
    household_members: list[KnownMember] = Field(
        default_factory=list,
        max_length=MAX_KNOWN_MEMBERS,
        description="Who the referrer says lives with the child (the child need not be listed). "
        "Stored as sent and shown as known to the referrer, not as verified memberships.",
    )

    @model_validator(mode="after")
    def _received_after_birth(self) -> Self:
        """Reject a referral received before the child was born."""
        # Same leniency as the date-of-birth check: the birth date may be local to a zone ahead.
        if (self.received_at + _MAX_UTC_OFFSET).date() < self.child.date_of_birth:
            raise _located(
                self,
                [
                    (
                        ("received_at",),
                        PydanticCustomError(
                            "received_before_birth",
                            "received_at precedes the child's date of birth",
                        ),
                        self.received_at.isoformat(),
                    )
                ],
            )
        return self


def _located(
    model: BaseModel, errors: list[tuple[tuple[str, ...], PydanticCustomError, Any]]
) -> ValidationError:
    """A ValidationError whose errors keep their field locations (loc, error, input).

    A model validator's own errors have an empty loc; raising a ValidationError keeps the loc
    on the field (pydantic-core prefixes it when this model is nested).
    """
    return ValidationError.from_exception_data(
        type(model).__name__,
        [InitErrorDetails(type=error, loc=loc, input=value) for loc, error, value in errors],
    )


class AgencyEventIn(_Contract):
    """A contact recorded by a partner agency about a child or household."""

    source_system: Id
    source_event_id: Id
    agency: Agency
    kind: EventKind
    occurred_at: Timestamp
    recorded_at: Timestamp | None = Field(
        default=None,
        description="When the agency shared the record (at or after occurred_at, not in the "
        "future); features count it only for referrals received after it. Absent: the time "
        "the service received the event.",
    )
    child_id: Id | None = None
    child: ChildDetails | None = Field(
        default=None,
        description="The child's details when the agency does not know the service's child id: "
        "the service resolves them as it does a referral's (linked, possible match with a "
        "review task, or a new child) and the reply's item says how. With `child_id` they are "
        "kept as the agency's identity record of that child.",
    )
    household_id: Id | None = Field(default=None, validate_default=True)
    person_id: Id | None = Field(
        default=None,
        description="The adult the event is about: required with the membership kinds and the "
        "person kinds (optional with adult_violence_offence), refused with every other kind.",
    )
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES
    )
    person: PersonDetails | None = Field(
        default=None,
        description="With adult_joined_household only: the adult's details, which add the "
        "person when person_id is new (a known person is kept as stored).",
    )

    @field_validator("kind")
    @classmethod
    def _kind_matches_agency(cls, value: EventKind, info: ValidationInfo) -> EventKind:
        """Reject an event kind that the given agency does not record."""
        agency = info.data.get("agency")
        expected = EVENT_AGENCY[value]
        if agency is not None and agency is not expected:
            raise PydanticCustomError(
                "kind_agency_mismatch",
                "event kind '{kind}' is recorded by agency '{expected}', not '{agency}'",
                {"kind": str(value), "expected": str(expected), "agency": str(agency)},
            )
        return value

    @field_validator("recorded_at")
    @classmethod
    def _recorded_after_it_occurred(
        cls, value: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        """Reject a record shared before the event it records occurred."""
        occurred = info.data.get("occurred_at")
        if value is not None and occurred is not None and value < occurred:
            raise PydanticCustomError(
                "recorded_before_occurred",
                "recorded_at ({recorded}) is before occurred_at ({occurred})",
                {"recorded": value.isoformat(), "occurred": occurred.isoformat()},
            )
        return value

    @field_validator("household_id")
    @classmethod
    def _child_or_household(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Require at least one of child_id, the child's details and household_id."""
        # A field that failed its own validation is absent from info.data; don't pile on.
        named = ("child_id", "child")
        if value is None and all(info.data.get(name, "invalid") is None for name in named):
            raise PydanticCustomError(
                "subject_missing",
                "at least one of child_id, child (the child's details) or household_id is required",
            )
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_values_short(cls, value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        """Reject string attribute values longer than ``MAX_ATTRIBUTE_VALUE_CHARS``."""
        # Checked here rather than on the union member so one bad value gives one error, not one
        # per union branch.
        too_long = sorted(
            k for k, v in value.items() if isinstance(v, str) and len(v) > MAX_ATTRIBUTE_VALUE_CHARS
        )
        if too_long:
            raise PydanticCustomError(
                "attribute_value_too_long",
                "attribute values must be at most {limit} characters: {keys}",
                {"limit": MAX_ATTRIBUTE_VALUE_CHARS, "keys": ", ".join(too_long)},
            )
        controlled = sorted(
            k
            for k, v in value.items()
            if isinstance(v, str) and _refused_character(v, multiline=True) is not None
        )
        if controlled:
            raise PydanticCustomError(
                "control_character",
                "attribute values contain a control or bidirectional formatting character: {keys}",
                {"keys": ", ".join(controlled)},
            )
        return value

    @model_validator(mode="after")
    def _person_fits_kind(self) -> Self:
        """A person, the person's details and a role only where the event kind takes them."""
        errors = _person_errors(self)
        if errors:
            raise _located(self, errors)
        return self


_ADULT_ROLE_NAMES = ", ".join(str(role) for role in ADULT_ROLES)
_PERSON_KIND_NAMES = ", ".join(sorted(str(kind) for kind in PERSON_EVENT_KINDS))
PERSON_OPTIONAL_KINDS: frozenset[EventKind] = frozenset({EventKind.adult_violence_offence})
"""Person kinds that may also be a household event without a person (as in vocabulary 1)."""


def _person_errors(
    event: AgencyEventIn,
) -> list[tuple[tuple[str, ...], PydanticCustomError, Any]]:
    """What is wrong with an event's person, details and role for its kind (empty: nothing)."""
    kind = event.kind
    errors: list[tuple[tuple[str, ...], PydanticCustomError, Any]] = []
    names_person = kind in MEMBERSHIP_EVENT_KINDS or kind in PERSON_EVENT_KINDS
    if names_person and event.person_id is None and kind not in PERSON_OPTIONAL_KINDS:
        errors.append(
            (
                ("person_id",),
                PydanticCustomError(
                    "person_required",
                    "event kind '{kind}' is about an adult: person_id is required",
                    {"kind": str(kind)},
                ),
                None,
            )
        )
    if not names_person and event.person_id is not None:
        errors.append(
            (
                ("person_id",),
                PydanticCustomError(
                    "person_not_accepted",
                    "event kind '{kind}' is not about an adult: person_id is accepted only with "
                    "adult_joined_household, adult_left_household and {kinds}",
                    {"kind": str(kind), "kinds": _PERSON_KIND_NAMES},
                ),
                event.person_id,
            )
        )
    if event.person is not None and kind is not EventKind.adult_joined_household:
        errors.append(
            (
                ("person",),
                PydanticCustomError(
                    "details_not_accepted",
                    "a person's details are accepted only with adult_joined_household, "
                    "not with '{kind}'",
                    {"kind": str(kind)},
                ),
                None,
            )
        )
    if kind in MEMBERSHIP_EVENT_KINDS:
        if event.household_id is None:
            errors.append(
                (
                    ("household_id",),
                    PydanticCustomError(
                        "household_required",
                        "event kind '{kind}' changes who lives in a household: household_id "
                        "is required",
                        {"kind": str(kind)},
                    ),
                    None,
                )
            )
        role = event.attributes.get("role")
        if role not in ADULT_ROLES:
            reason = (
                "attributes.role is required with '{kind}': one of {roles}"
                if role is None
                else "attributes.role must be an adult's role, one of {roles}; not {given}"
            )
            errors.append(
                (
                    ("attributes", "role"),
                    PydanticCustomError(
                        "role_required" if role is None else "role_not_adult",
                        reason,
                        {"kind": str(kind), "roles": _ADULT_ROLE_NAMES, "given": repr(role)},
                    ),
                    role,
                )
            )
    return errors


class BandAgreement(StrEnum):
    """Practitioner's view of the suggested triage band (derived from their own priority)."""

    agree = "agree"
    should_be_higher = "should_be_higher"
    should_be_lower = "should_be_lower"


_PRIORITY_NAMES = ", ".join(str(p) for p in Priority)


class DecisionIn(_Contract):
    """A practitioner's front-door decision on a referral, with their own priority for it.

    ``agreement`` is derived from ``priority`` against the band at decision time. Clients that
    predate ``priority`` may still send ``agreement`` alone (stored as sent, no priority); with
    both, they must match. Whether a rationale is required depends on the referral (a closing
    decision on one with an injury or an earlier referral in 12 months), never on agreeing or
    disagreeing, so the service checks it, not this model.
    """

    decision: DecisionKind
    agreement: BandAgreement | None = Field(
        default=None,
        description="Deprecated: derived from priority. Sent alone by older clients.",
    )
    priority: Priority | None = Field(
        default=None,
        validate_default=True,
        description="The practitioner's own priority on the four bands, highest first.",
    )
    reason_codes: list[ReasonCode] = Field(default_factory=list, max_length=10)
    rationale: PlainText = Field(default="", max_length=MAX_RATIONALE_CHARS, validate_default=True)

    @field_validator("priority")
    @classmethod
    def _priority_or_agreement(
        cls, value: Priority | None, info: ValidationInfo
    ) -> Priority | None:
        """Require the practitioner's priority unless an older client sent agreement alone.

        A field validator (after ``agreement``), so a missing decision and a missing priority
        are reported together.
        """
        if value is None and info.data.get("agreement") is None:
            raise PydanticCustomError(
                "priority_required",
                "priority is required: the practitioner's own priority, one of {names} "
                "(agreement with the band is derived from it)",
                {"names": _PRIORITY_NAMES},
            )
        return value


def derive_agreement(priority: Priority, band: str | None) -> BandAgreement | None:
    """The practitioner's priority against the suggested band (None: no band to compare)."""
    if band not in BANDS_IN_ORDER:
        return None
    given, suggested = PRIORITY_ORDER.index(priority), BANDS_IN_ORDER.index(band)
    if given == suggested:
        return BandAgreement.agree
    return BandAgreement.should_be_higher if given < suggested else BandAgreement.should_be_lower


PRIORITY_ORDER: tuple[Priority, ...] = tuple(PRIORITY_BANDS)
BANDS_IN_ORDER: tuple[str, ...] = tuple(PRIORITY_BANDS.values())
"""The four bands, highest first (as ``triage.queue.BANDS``)."""


class OutcomeIn(_Contract):
    """The observed 12-month outcome of a referral."""

    referral_id: Id
    highest_level: OutcomeLevel
    investigated_12m: bool
    significant_harm_12m: bool
    cp_category: PlanCategory | None = None

    @field_validator("cp_category")
    @classmethod
    def _category_needs_plan(
        cls, value: PlanCategory | None, info: ValidationInfo
    ) -> PlanCategory | None:
        """Reject a plan category unless the outcome reached a child protection plan."""
        level = info.data.get("highest_level")
        if value is not None and level is not None and level is not OutcomeLevel.cp_plan:
            raise PydanticCustomError(
                "category_without_plan",
                "cp_category is only allowed when highest_level is 'cp_plan', not '{level}'",
                {"level": str(level)},
            )
        return value


def error_fields(exc: ValidationError) -> list[dict[str, str]]:
    """Flatten a ValidationError into ``[{"field": "a.b", "reason": "..."}]`` for 422 bodies."""
    return [
        {"field": ".".join(str(part) for part in err["loc"]), "reason": err["msg"]}
        for err in exc.errors(include_url=False)
    ]
