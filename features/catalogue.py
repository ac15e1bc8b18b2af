"""The signal catalogue: every per-referral signal, declared once, read by both builders.

Time rule (both builders): a record counts for a referral only if its time, truncated to
the millisecond, is strictly before the referral's ``received_at`` truncated to the
millisecond. Records at the same instant, the referral itself included, never count. A
window of D days covers ``[received_at - D days, received_at)``: a record exactly D days
earlier counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from triage.vocab import (
    ADULT_RISK_KINDS,
    ADULT_ROLES,
    PARENT_HISTORY_KINDS,
    PROFESSIONAL_REFERRERS,
    RELATIVE_OR_FRIEND,
    UNRELATED_ROLES,
    Concern,
    DecisionKind,
    EventKind,
    HouseholdRole,
    ReferrerRelationship,
    ReferrerType,
)

CATALOGUE_VERSION = "3"
"""3: people in the household (memberships, adults' and siblings' records, moves)."""

ENDED_BY: dict[EventKind, EventKind] = {EventKind.cp_plan_start: EventKind.cp_plan_end}
"""A person's record of the first kind is in force until one of the second kind about the same
person at or after it; records of every other kind stay in force once made."""


class Entity(StrEnum):
    """Whose records a signal reads: the child's own, or the whole household's."""

    child = "child"
    household = "household"


class Source(StrEnum):
    """Where a signal's records come from."""

    referral = "referral"  # the referral being scored
    referrals = "referrals"  # earlier referrals
    events = "events"  # agency events
    decisions = "decisions"  # earlier front-door decisions, dated when decided
    memberships = "memberships"  # the household's other members, dated when they joined
    household_changes = "household_changes"  # members' joins and leaves, and the child's moves


class Aggregation(StrEnum):
    """How records become a number."""

    value = "value"
    exists = "exists"
    count = "count"  # type: ignore[assignment]  # the aggregation's name; shadows str.count
    distinct_count = "distinct_count"
    days_since = "days_since"
    max_same_concern = "max_same_concern"


class Direction(StrEnum):
    """The way a signal is expected to push priority, where one is defensible."""

    raises = "raises"
    lowers = "lowers"


@dataclass(frozen=True)
class Filter:
    """Which records a signal counts; empty tuples mean no restriction."""

    kinds: tuple[EventKind, ...] = ()
    referrer_types: tuple[ReferrerType, ...] = ()
    relationships: tuple[ReferrerRelationship, ...] = ()
    concerns: tuple[Concern, ...] = ()
    decisions: tuple[DecisionKind, ...] = ()
    injury_reported: bool | None = None
    injury_head_face_neck: bool | None = None
    max_age_months: float | None = None
    roles: tuple[HouseholdRole, ...] = ()
    """Memberships in these roles."""
    person_records: tuple[EventKind, ...] = ()
    """Members with a record of one of these kinds about them, made before the referral and in
    force at it (``ENDED_BY``)."""
    lives_there: bool = False
    """Members still living in the household at the referral (no leaving date before it)."""


@dataclass(frozen=True)
class Signal:
    """One signal: what it reads, over which window, how it aggregates, how it reads aloud."""

    name: str
    entity: Entity
    source: Source
    aggregation: Aggregation
    template: str
    window_days: int | None = None
    filter: Filter = field(default_factory=Filter)
    distinct_of: str | None = None
    direction: Direction | None = None
    description: str = ""
    absent: str = ""
    """The reading when an ``exists`` signal is 0 or a value is missing."""
    reads_as_age: bool = False
    """The value is an age in months, read aloud as people say ages ("8 months", "13 years")."""

    @property
    def window_label(self) -> str:
        """The window in words."""
        if self.source is Source.referral:
            return "this referral"
        if self.filter.lives_there and self.window_days is None:
            return "at the referral"
        return "all history" if self.window_days is None else f"{self.window_days} days"

    def sentence(self, value: float) -> str:
        """The plain-language reading of a value, from the template."""
        if value != value or (self.aggregation is Aggregation.exists and value == 0):  # NaN or no
            if self.absent:
                return self.absent
            return "Not recorded: " + self.template.format(value="a", s="")
        if self.aggregation is Aggregation.days_since:  # whole days: "8 days", not "8.22091"
            value = float(math.floor(value))
        if self.reads_as_age:
            return self.template.format(value=age_words(int(value)), s="")
        leading = self.template.startswith("{value}")
        shown = "no" if value == 0 and leading else f"{value:g}"
        if self.aggregation is Aggregation.days_since and value == 0:
            shown = "less than 1"
        singular = value == 1 or shown == "less than 1"
        text = self.template.format(value=shown, s="" if singular else "s")
        return text[0].upper() + text[1:]


def age_words(months: int) -> str:
    """An age as people say it: months under two years, then whole years."""
    if months < 24:
        return f"{months} month" + ("" if months == 1 else "s")
    return f"{months // 12} years"


CONCERN_WORDS: dict[Concern, str] = {
    **{c: c.value.replace("_", " ") for c in Concern},
    Concern.missing: "the child going missing",
    Concern.other: "a concern of another kind",
}
"""A concern as a reason names it ("the referral's concerns include ...")."""

R, C, H = Source.referral, Entity.child, Entity.household
UP, DOWN = Direction.raises, Direction.lowers

_CURRENT: tuple[Signal, ...] = (
    Signal("child_age_months", C, R, Aggregation.value, "The child is {value} old",
           direction=DOWN, description="Age in whole months at referral",
           absent="The child's age is not recorded", reads_as_age=True),
    Signal("infant_under_1", C, R, Aggregation.exists, "The child is under one year old",
           filter=Filter(max_age_months=12), direction=UP,
           absent="The child is one year old or older"),
    Signal("non_mobile_infant_injury", C, R, Aggregation.exists,
           "An injury is reported to a baby under six months (not yet mobile)",
           filter=Filter(max_age_months=6, injury_reported=True), direction=UP,
           absent="There is no reported injury to a baby under six months"),
    Signal("injury_reported", C, R, Aggregation.exists, "An injury is reported",
           filter=Filter(injury_reported=True), direction=UP, absent="No injury is reported"),
    Signal("injury_head_face_neck", C, R, Aggregation.exists,
           "An injury to the head, face or neck is reported",
           filter=Filter(injury_head_face_neck=True), direction=UP,
           absent="No injury to the head, face or neck is reported"),
    *(
        Signal(f"concern_{c.value}", C, R, Aggregation.exists,
               f"The referral's concerns include {CONCERN_WORDS[c]}", filter=Filter(concerns=(c,)),
               absent=f"The referral's concerns do not include {CONCERN_WORDS[c]}")
        for c in Concern
    ),
    Signal("referrer_professional", C, R, Aggregation.exists, "The referrer is a professional",
           filter=Filter(referrer_types=PROFESSIONAL_REFERRERS),
           absent="The referrer is not a professional"),
    Signal("referrer_relative_friend", C, R, Aggregation.exists,
           "The referrer is a relative or family friend",
           filter=Filter(relationships=RELATIVE_OR_FRIEND), direction=UP,
           absent="The referrer is not a relative or family friend"),
    Signal("referrer_anonymous", C, R, Aggregation.exists, "The referrer is anonymous",
           filter=Filter(referrer_types=(ReferrerType.anonymous,)),
           absent="The referrer gave their name"),
)  # fmt: skip

_HISTORY: tuple[Signal, ...] = (
    Signal("prior_referrals_child_90d", C, Source.referrals, Aggregation.count,
           "{value} earlier referral{s} about this child in the last 90 days", 90, direction=UP),
    Signal("prior_referrals_child_365d", C, Source.referrals, Aggregation.count,
           "{value} earlier referral{s} about this child in the last 12 months", 365, direction=UP),
    Signal("prior_referrals_child_all", C, Source.referrals, Aggregation.count,
           "{value} earlier referral{s} about this child in all records", direction=UP),
    Signal("prior_referrals_household_365d", H, Source.referrals, Aggregation.count,
           "{value} earlier referral{s} about children in this household in the last 12 months",
           365, direction=UP),
    Signal("distinct_referrers_365d", C, Source.referrals, Aggregation.distinct_count,
           "{value} different known referrer{s} raised concerns in the last 12 months", 365,
           distinct_of="referrer_id", direction=UP),
    Signal("relative_friend_concerns_365d", C, Source.referrals, Aggregation.count,
           "{value} concern{s} raised by relatives or family friends in the last 12 months", 365,
           filter=Filter(relationships=RELATIVE_OR_FRIEND), direction=UP),
    Signal("prior_injury_reports_365d", C, Source.referrals, Aggregation.count,
           "{value} earlier referral{s} reporting an injury in the last 12 months", 365,
           filter=Filter(injury_reported=True), direction=UP),
    Signal("repeat_same_concern_365d", C, Source.referrals, Aggregation.max_same_concern,
           "The same concern was raised {value} time{s} before in the last 12 months", 365,
           direction=UP, description="Most earlier referrals sharing one of this one's concerns"),
    Signal("prior_nfa_closures_365d", C, Source.decisions, Aggregation.count,
           "{value} earlier referral{s} closed as “no further action” in the last 12 months", 365,
           filter=Filter(decisions=(DecisionKind.no_further_action,)), direction=UP),
    Signal("days_since_last_referral", C, Source.referrals, Aggregation.days_since,
           "The last referral about this child was {value} day{s} ago", direction=DOWN,
           description="Missing (NaN) when there is no earlier referral",
           absent="There is no earlier referral about this child"),
    Signal("police_da_incidents_household_365d", H, Source.events, Aggregation.count,
           "{value} police domestic-abuse incident{s} at the household in the last 12 months",
           365, filter=Filter(kinds=(EventKind.domestic_abuse_incident,)), direction=UP),
    Signal("household_adult_violence_history", H, Source.events, Aggregation.exists,
           "An adult in the household has a recorded violence offence",
           filter=Filter(kinds=(EventKind.adult_violence_offence,)), direction=UP,
           absent="No violence offence is recorded for the household"),
    Signal("ed_attendances_365d", C, Source.events, Aggregation.count,
           "{value} emergency department attendance{s} in the last 12 months", 365,
           filter=Filter(kinds=(EventKind.ed_attendance,))),
    Signal("ed_injury_attendances_365d", C, Source.events, Aggregation.count,
           "{value} emergency attendance{s} for an injury in the last 12 months", 365,
           filter=Filter(kinds=(EventKind.ed_injury_attendance,)), direction=UP),
    Signal("school_absence_concerns_90d", C, Source.events, Aggregation.count,
           "{value} school absence concern{s} in the last 90 days", 90,
           filter=Filter(kinds=(EventKind.absence_concern,)), direction=UP),
    Signal("school_safeguarding_concerns_365d", C, Source.events, Aggregation.count,
           "{value} school safeguarding concern{s} in the last 12 months", 365,
           filter=Filter(kinds=(EventKind.safeguarding_concern,)), direction=UP),
    Signal("missed_health_appointments_365d", C, Source.events, Aggregation.count,
           "{value} missed health appointment{s} in the last 12 months", 365,
           filter=Filter(kinds=(EventKind.missed_appointment,)), direction=UP),
    Signal("distinct_agencies_90d", H, Source.events, Aggregation.distinct_count,
           "Agencies in contact with the family in the last 90 days: {value}", 90,
           distinct_of="agency", direction=UP),
    Signal("prior_s47_ever", C, Source.events, Aggregation.exists,
           "There has been a section 47 enquiry before",
           filter=Filter(kinds=(EventKind.s47_enquiry,)), direction=UP,
           absent="There has been no section 47 enquiry before"),
    Signal("prior_cp_plan_ever", C, Source.events, Aggregation.exists,
           "The child has been on a child protection plan before",
           filter=Filter(kinds=(EventKind.cp_plan_start,)), direction=UP,
           absent="The child has not been on a child protection plan before"),
    Signal("prior_cin_ever", C, Source.events, Aggregation.exists,
           "The child has been a child in need before",
           filter=Filter(kinds=(EventKind.child_in_need,)), direction=UP,
           absent="The child has not been a child in need before"),
)  # fmt: skip

_ADULT_RISK = tuple(sorted(ADULT_RISK_KINDS))  # sorted: a frozenset's order varies by process
_PARENT_HISTORY = tuple(sorted(PARENT_HISTORY_KINDS))
_PARENTS = (HouseholdRole.parent, HouseholdRole.step_parent)
_RISK_WORDS = "a record of violence, domestic abuse or probation"

# Who lives with the child: the referral's household as its memberships say at the referral.
_PEOPLE: tuple[Signal, ...] = (
    Signal("adult_joined_household_90d", H, Source.memberships, Aggregation.count,
           "{value} adult{s} joined the household in the last 90 days", 90,
           filter=Filter(roles=ADULT_ROLES), direction=UP,
           description="Adults who began living in the household in the window, whether or "
                       "not they still live there"),
    Signal("adult_joined_household_365d", H, Source.memberships, Aggregation.count,
           "{value} adult{s} joined the household in the last 12 months", 365,
           filter=Filter(roles=ADULT_ROLES), direction=UP,
           description="Adults who began living in the household in the window, whether or "
                       "not they still live there"),
    Signal("unrelated_adult_in_household", H, Source.memberships, Aggregation.exists,
           "An adult not related to the child lives in the household at the referral",
           filter=Filter(roles=UNRELATED_ROLES, lives_there=True), direction=UP,
           description="A parent's partner (not a step-parent) or another unrelated adult",
           absent="Every adult recorded in the household at the referral is related to the child"),
    Signal("risk_adult_joined_household_365d", H, Source.memberships, Aggregation.exists,
           f"An adult with {_RISK_WORDS} joined the household in the last 12 months", 365,
           filter=Filter(roles=ADULT_ROLES, person_records=_ADULT_RISK), direction=UP,
           description="Whether or not the adult still lives there; the record may date from "
                       "before or after they joined, as long as it is before the referral",
           absent=f"No adult with {_RISK_WORDS} joined the household in the last 12 months"),
    Signal("risk_adult_in_household", H, Source.memberships, Aggregation.exists,
           f"An adult with {_RISK_WORDS} lives in the household at the referral",
           filter=Filter(roles=ADULT_ROLES, person_records=_ADULT_RISK, lives_there=True),
           direction=UP, description="However long ago they joined",
           absent=f"No adult living in the household at the referral has {_RISK_WORDS}"),
    Signal("parent_care_history", H, Source.memberships, Aggregation.exists,
           "A parent living in the household has had care proceedings or a child removed "
           "before this referral",
           filter=Filter(roles=_PARENTS, person_records=_PARENT_HISTORY, lives_there=True),
           direction=UP, description="A parent or step-parent living there at the referral",
           absent="No parent living in the household has a recorded care proceeding or child "
                  "removed before this referral"),
    Signal("sibling_on_plan_or_looked_after", H, Source.memberships, Aggregation.exists,
           "Another child in the household is on a child protection plan or looked after at "
           "the referral",
           filter=Filter(roles=(HouseholdRole.child,),
                         person_records=(EventKind.cp_plan_start, EventKind.looked_after_start),
                         lives_there=True),
           direction=UP, description="A plan started and not yet ended, or looked after",
           absent="No other child in the household is on a child protection plan or looked "
                  "after at the referral"),
    Signal("household_changes_365d", H, Source.household_changes, Aggregation.count,
           "{value} change{s} to who lives in the household in the last 12 months", 365,
           direction=UP,
           description="Members joining or leaving, the child's own moves included; a birth "
                       "is not a change"),
)  # fmt: skip

CATALOGUE: tuple[Signal, ...] = _CURRENT + _HISTORY + _PEOPLE
SIGNALS: dict[str, Signal] = {s.name: s for s in CATALOGUE}
SIGNAL_NAMES: tuple[str, ...] = tuple(SIGNALS)
PEOPLE_SIGNAL_NAMES: tuple[str, ...] = tuple(
    s.name for s in CATALOGUE if s.source in (Source.memberships, Source.household_changes)
)
"""The signals of who lives with the child (issue 20): memberships and household changes."""

PERSON_RECORD_KINDS: frozenset[str] = frozenset(
    {k.value for s in CATALOGUE for k in s.filter.person_records}
    | {ENDED_BY[k].value for s in CATALOGUE for k in s.filter.person_records if k in ENDED_BY}
)
"""The event kinds membership signals read as records about a person (ending kinds included)."""

PROTECTED_INPUTS: frozenset[str] = frozenset(
    {"ethnicity", "sex", "disability", "deprivation_decile"}
)
"""Audited, never signals, so never in ``features.policy.DEFAULT_MODEL_INPUTS``."""


def catalogue_rows() -> list[dict[str, str]]:
    """The catalogue as rows of text, for ``triage features list`` and the docs."""
    rows = []
    for s in CATALOGUE:
        flt = s.filter
        parts = [
            *(k.value for k in flt.kinds),
            *(r.value for r in flt.referrer_types),
            *(r.value for r in flt.relationships),
            *(c.value for c in flt.concerns),
            *(d.value for d in flt.decisions),
        ]
        if flt.injury_reported:
            parts.append("injury reported")
        if flt.injury_head_face_neck:
            parts.append("head/face/neck")
        if flt.max_age_months is not None:
            parts.append(f"age < {flt.max_age_months:g} months")
        parts += [r.value for r in flt.roles]
        if flt.person_records:
            parts.append("with " + " or ".join(k.value for k in flt.person_records))
        if flt.lives_there:
            parts.append("living there")
        aggregation = s.aggregation.value.replace("_", " ")
        if s.distinct_of:
            aggregation += f" of {s.distinct_of}"
        rows.append(
            {
                "signal": s.name,
                "entity": s.entity.value,
                "source": s.source.value,
                "filter": ", ".join(parts) or "any",
                "window": s.window_label,
                "aggregation": aggregation,
                "direction": s.direction.value if s.direction else "",
                "reads as": s.sentence(3 if s.aggregation is not Aggregation.exists else 1),
            }
        )
    return rows


def catalogue_markdown() -> str:
    """The catalogue as a Markdown table (the docs site's signal reference is built from it)."""
    rows = catalogue_rows()
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(f"`{r[h]}`" if h == "signal" else r[h] for h in header) + " |"
        for r in rows
    ]
    return "\n".join(lines)
