"""Histories shaped on the public timelines of safeguarding reviews, and controls.

Each scenario is one child's records before a referral, and the referral itself. The shapes
follow published reviews (the Child Safeguarding Practice Review Panel's national review of
May 2022 and local reviews like it): relatives' repeated concerns, photographed injuries,
agencies each holding one piece. Every ID, name and date here is synthetic. Controls check
that repetition alone, with nothing corroborating it, does not escalate a referral.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from features.catalogue import PERSON_RECORD_KINDS
from features.records import (
    MS_PER_DAY,
    DecisionRecord,
    EventRecord,
    History,
    MembershipRecord,
    ReferralRecord,
    person_records,
)
from triage.vocab import EVENT_AGENCY, EventKind, HouseholdRole

RECEIVED = datetime(2026, 5, 12, 10, 15, tzinfo=UTC)
"""When each scenario's referral arrives (synthetic)."""


@dataclass(frozen=True)
class Earlier:
    """An earlier referral: when, by whom, about what, and how it was closed."""

    days_before: float
    referrer_type: str
    concerns: tuple[str, ...]
    relationship: str | None = None
    referrer_id: str | None = None
    injury_sites: tuple[str, ...] = ()
    photographed: bool = False
    decision: str | None = "no_further_action"
    """The front-door decision, made a day later (None: not decided)."""


@dataclass(frozen=True)
class Record:
    """An agency record about the child (or, with ``household``, about the household)."""

    days_before: float
    kind: EventKind
    household: bool = False


@dataclass(frozen=True)
class Adult:
    """An adult who lives (or lived) with the child, and the agencies' records about them."""

    person_id: str
    role: HouseholdRole
    joined_days_before: float | None = None
    """When the adult joined the child's household (None: before the child was born)."""
    left_days_before: float | None = None
    records: tuple[tuple[EventKind, float], ...] = ()
    """Records about this adult: the kind and how many days before the referral."""


@dataclass(frozen=True)
class Scenario:
    """A child's history and the referral being triaged, with what a practitioner must see."""

    name: str
    story: str
    age_months: int
    referral: Earlier
    earlier: tuple[Earlier, ...] = ()
    records: tuple[Record, ...] = ()
    at_least: str | None = None
    """The band must be this or higher (None: no floor)."""
    at_most: str | None = None
    """The band must be this or lower (None: no ceiling)."""
    flags: frozenset[str] = frozenset()
    """Safety rules that must fire (exactly these)."""
    reasons: tuple[str, ...] = ()
    """Signals that must be among the top reasons, raising priority."""
    top: int = 8
    raised_by_history: bool = False
    """The history must lift the referral at least one band above the same referral alone."""
    control: bool = False
    """Repetition alone: no safety rule fires, the band stays below Review first, and the same
    referrals from different people would rank at least as high (corroboration counts)."""
    adults: tuple[Adult, ...] = ()
    """Who lives with the child besides other children (none: no memberships recorded)."""
    moved_in_days_before: float | None = None
    """The child moved into this household from another this many days ago (None: born here)."""
    people_raise: bool = False
    """Who lives with the child must rank the referral higher than a model without the signals
    of who lives there."""

    def alone(self) -> Scenario:
        """The same referral with no history at all."""
        return Scenario(self.name + "_alone", "", self.age_months, self.referral)

    def corroborated(self) -> Scenario:
        """The same referrals, each raised by a different person."""
        earlier = tuple(
            Earlier(e.days_before, e.referrer_type, e.concerns, e.relationship,
                    f"{e.referrer_id}-{i}", e.injury_sites, e.photographed, e.decision)
            for i, e in enumerate(self.earlier)
        )  # fmt: skip
        return Scenario(self.name + "_corroborated", "", self.age_months, self.referral, earlier)

    @property
    def born(self) -> date:
        """A date of birth that makes the child ``age_months`` old at receipt."""
        return (RECEIVED - timedelta(days=self.age_months * 30.44 + 10)).date()

    def query(self) -> ReferralRecord:
        """The referral being triaged."""
        return _referral("REF-NOW", self.referral, RECEIVED)

    def history(self) -> History:
        """Everything recorded before the referral."""
        referrals, decisions = [], []
        for i, earlier in enumerate(self.earlier):
            at = RECEIVED - timedelta(days=earlier.days_before)
            row = _referral(f"REF-{i:03d}", earlier, at)
            referrals.append(row)
            if earlier.decision is not None:
                decided = at + timedelta(days=1)
                decisions.append(
                    DecisionRecord(
                        row.referral_id, "C-SCN", "H-SCN", _ms(decided), earlier.decision
                    )
                )
        events = [
            EventRecord(
                f"EVT-{i:03d}",
                None if r.household else "C-SCN",
                "H-SCN",
                _ms(RECEIVED - timedelta(days=r.days_before)),
                EVENT_AGENCY[r.kind].value,
                r.kind.value,
            )
            for i, r in enumerate(self.records)
        ]
        events += [
            EventRecord(
                f"EVT-{adult.person_id}-{i:02d}",
                None,
                None,
                _ms(RECEIVED - timedelta(days=days_before)),
                EVENT_AGENCY[kind].value,
                kind.value,
                adult.person_id,
            )
            for adult in self.adults
            for i, (kind, days_before) in enumerate(adult.records)
        ]
        return History(
            referrals=referrals,
            events=events,
            decisions=decisions,
            memberships=self.memberships(),
            person_records=person_records(events, PERSON_RECORD_KINDS),
        )

    def memberships(self) -> list[MembershipRecord]:
        """Where the child lived, and who lived with it (none when the scenario names no one)."""
        if not self.adults and self.moved_in_days_before is None:
            return []
        born = datetime(self.born.year, self.born.month, self.born.day, tzinfo=UTC)
        born_day = _ms(born) // MS_PER_DAY
        child = HouseholdRole.child.value
        if self.moved_in_days_before is None:
            out = [MembershipRecord("M-C", "C-SCN", "H-SCN", child, _ms(born), None, born_day)]
        else:
            moved = _ms(RECEIVED - timedelta(days=self.moved_in_days_before))
            out = [
                MembershipRecord("M-C-0", "C-SCN", "H-EARLIER", child, _ms(born), moved, born_day),
                MembershipRecord("M-C-1", "C-SCN", "H-SCN", child, moved, None, born_day),
            ]
        for adult in self.adults:
            joined = (
                born - timedelta(days=365)
                if adult.joined_days_before is None
                else RECEIVED - timedelta(days=adult.joined_days_before)
            )
            left = (
                None
                if adult.left_days_before is None
                else _ms(RECEIVED - timedelta(days=adult.left_days_before))
            )
            out.append(
                MembershipRecord(
                    f"M-{adult.person_id}",
                    adult.person_id,
                    "H-SCN",
                    adult.role.value,
                    _ms(joined),
                    left,
                )
            )
        return out


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _referral(referral_id: str, r: Earlier, at: datetime) -> ReferralRecord:
    return ReferralRecord(
        referral_id=referral_id,
        child_id="C-SCN",
        household_id="H-SCN",
        t_ms=_ms(at),
        referrer_type=r.referrer_type,
        referrer_relationship=r.relationship,
        referrer_id=r.referrer_id,
        concerns=frozenset(r.concerns),
        injury_reported=bool(r.injury_sites),
        injury_sites=frozenset(r.injury_sites),
    )


def _family(days: float, who: str, n: int, **kw) -> Earlier:
    return Earlier(days, "individual", ("physical_abuse",), relationship=who,
                   referrer_id=f"IND-H-SCN-{who[0].upper()}{n}", **kw)  # fmt: skip


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="relatives_five_concerns_toddler_black_eye",
        story=(
            "A 15-month-old. Over nine months five family members and friends each raise "
            "bruising; two send photographs; each referral is closed with no further action. "
            "An adult in the household has a violence offence on record. Now the child's "
            "aunt sends a photograph of a black eye."
        ),
        age_months=15,
        earlier=(
            _family(270, "relative", 1),
            _family(200, "family_friend", 1, injury_sites=("limbs",), photographed=True),
            _family(140, "relative", 2),
            _family(90, "relative", 3, injury_sites=("torso_back",), photographed=True),
            _family(40, "family_friend", 2),
        ),
        records=(Record(240, EventKind.adult_violence_offence, household=True),),
        referral=_family(
            0, "relative", 1, injury_sites=("head_face_neck",), photographed=True, decision=None
        ),
        at_least="Review first",
        flags=frozenset(
            {"head_injury_under_two", "family_photographed_injury", "third_referral_after_nfa"}
        ),
        # The five relatives' concerns: as five earlier referrals (both families rank it
        # high; the challenger stopped ranking "five different referrers" in its top twelve
        # once the world had twins and sharing delays).
        reasons=(
            "household_adult_violence_history",
            "prior_referrals_child_all",
            "injury_reported",
        ),
    ),
    Scenario(
        name="grandmother_photographs_then_school_sees_bruising",
        story=(
            "A six-year-old. The grandmother twice reports bruising to the child's back, once "
            "with photographs; both are closed with no further action. The school then records "
            "a safeguarding concern, and the police attend a domestic-abuse incident at the "
            "home. Now the school reports a new bruise on the child's back."
        ),
        age_months=74,
        earlier=(
            _family(150, "relative", 1, injury_sites=("torso_back",), photographed=True),
            _family(95, "relative", 1, injury_sites=("torso_back",)),
        ),
        records=(
            Record(60, EventKind.safeguarding_concern),
            Record(40, EventKind.domestic_abuse_incident, household=True),
        ),
        referral=Earlier(
            0,
            "school",
            ("physical_abuse",),
            referrer_id="SCH-0101",
            injury_sites=("torso_back",),
            decision=None,
        ),
        at_least="Elevated",
        reasons=(
            "school_safeguarding_concerns_365d",
            "police_da_incidents_household_365d",
            "injury_reported",
        ),
    ),
    Scenario(
        name="each_agency_one_piece",
        story=(
            "A three-year-old. Health records three missed appointments and an emergency "
            "attendance for an injury; the police have been called to two domestic-abuse "
            "incidents at the home; the family has been evicted. No agency has referred. Now "
            "the police notify a third incident with the child present."
        ),
        age_months=38,
        records=(
            Record(200, EventKind.missed_appointment),
            Record(150, EventKind.missed_appointment),
            Record(110, EventKind.domestic_abuse_incident, household=True),
            Record(75, EventKind.eviction, household=True),
            Record(70, EventKind.missed_appointment),
            Record(50, EventKind.ed_injury_attendance),
            Record(20, EventKind.domestic_abuse_incident, household=True),
        ),
        referral=Earlier(0, "police", ("domestic_abuse",), referrer_id="PC-0007", decision=None),
        raised_by_history=True,
        reasons=("missed_health_appointments_365d", "police_da_incidents_household_365d"),
    ),
    Scenario(
        name="bruised_baby_not_yet_mobile",
        story="A four-month-old with a bruise, seen by the health visitor; no earlier records.",
        age_months=4,
        referral=Earlier(
            0,
            "health",
            ("physical_abuse",),
            relationship="health_visitor",
            referrer_id="HV-0003",
            injury_sites=("limbs",),
            decision=None,
        ),
        at_least="Review first",
        flags=frozenset({"non_mobile_infant_injury"}),
    ),
    Scenario(
        name="control_one_caller_about_a_teenager",
        story=(
            "A fifteen-year-old. The same neighbour has called twice this year about neglect; "
            "both calls were closed with no further action; no agency holds anything. The "
            "neighbour calls a third time with the same concern."
        ),
        age_months=183,
        earlier=(
            Earlier(
                200,
                "individual",
                ("neglect",),
                relationship="neighbour",
                referrer_id="IND-H-SCN-N1",
            ),
            Earlier(
                90, "individual", ("neglect",), relationship="neighbour", referrer_id="IND-H-SCN-N1"
            ),
        ),
        referral=Earlier(
            0,
            "individual",
            ("neglect",),
            relationship="neighbour",
            referrer_id="IND-H-SCN-N1",
            decision=None,
        ),
        control=True,
    ),
    Scenario(
        name="control_repeat_absence_concerns",
        story=(
            "A fourteen-year-old. The school has referred twice about attendance, both closed "
            "with no further action; nothing else is recorded. The school refers again about "
            "attendance."
        ),
        age_months=170,
        earlier=(
            Earlier(210, "school", ("other",), referrer_id="SCH-0202"),
            Earlier(120, "school", ("other",), referrer_id="SCH-0202"),
        ),
        referral=Earlier(0, "school", ("other",), referrer_id="SCH-0202", decision=None),
        control=True,
    ),
)

PEOPLE_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="child_moves_in_with_a_parents_new_partner",
        story=(
            "A six-year-old lived with his mother. Four months ago he moved to his father's, "
            "where the father's new partner had moved in two months before. His grandmother "
            "now reports bruising to his back and that he seems withdrawn."
        ),
        age_months=74,
        moved_in_days_before=120,
        adults=(
            Adult("P-FATHER", HouseholdRole.parent, joined_days_before=400),
            Adult("P-PARTNER", HouseholdRole.parent_partner, joined_days_before=180),
        ),
        referral=_family(0, "relative", 1, injury_sites=("torso_back",), decision=None),
        people_raise=True,
    ),
    Scenario(
        name="mothers_new_partner_with_a_violence_record",
        story=(
            "A fourteen-month-old lives with her mother. Two months ago the mother's new "
            "partner moved in; the police hold a violence offence and a domestic-abuse record "
            "about him from before. A family friend now reports that the child has been "
            "neglected and seems frightened of him."
        ),
        age_months=14,
        adults=(
            Adult("P-MOTHER", HouseholdRole.parent),
            Adult(
                "P-PARTNER",
                HouseholdRole.parent_partner,
                joined_days_before=60,
                records=(
                    (EventKind.adult_violence_offence, 700),
                    (EventKind.domestic_abuse_perpetrator, 400),
                ),
            ),
        ),
        referral=Earlier(
            0,
            "individual",
            ("neglect", "emotional_abuse"),
            relationship="family_friend",
            referrer_id="IND-H-SCN-F1",
            decision=None,
        ),
        people_raise=True,
    ),
)

BY_NAME: dict[str, Scenario] = {s.name: s for s in (*SCENARIOS, *PEOPLE_SCENARIOS)}
