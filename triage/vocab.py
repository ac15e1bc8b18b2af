"""Closed vocabularies shared by the schema, the store, the synthetic world and the features.

Extending a vocabulary is a deliberate, versioned change: bump ``VOCABULARY_VERSION``.
"""

from __future__ import annotations

from enum import StrEnum

VOCABULARY_VERSION = "2"
"""2: people in the household (roles, person-level event kinds, household changes)."""


class ReferrerType(StrEnum):
    """Official referral source categories."""

    police = "police"
    school = "school"
    education_services = "education_services"
    health = "health"
    housing = "housing"
    la_services = "la_services"
    other_legal = "other_legal"
    individual = "individual"
    anonymous = "anonymous"
    other = "other"
    unknown = "unknown"


class ReferrerRelationship(StrEnum):
    """Refinement of the referrer type (health roles, individuals' relationship to the child)."""

    gp = "gp"
    health_visitor = "health_visitor"
    hospital = "hospital"
    midwife = "midwife"
    camhs = "camhs"
    parent = "parent"
    relative = "relative"
    family_friend = "family_friend"
    neighbour = "neighbour"
    self = "self"


PROFESSIONAL_REFERRERS: tuple[ReferrerType, ...] = (
    ReferrerType.police,
    ReferrerType.school,
    ReferrerType.education_services,
    ReferrerType.health,
    ReferrerType.housing,
    ReferrerType.la_services,
    ReferrerType.other_legal,
)
"""Referrer types that are agencies or professionals acting in that role."""
RELATIVE_OR_FRIEND: tuple[ReferrerRelationship, ...] = (
    ReferrerRelationship.relative,
    ReferrerRelationship.family_friend,
)
"""Individuals' relationships that make them family or friends of the child."""
VOICES = ("professional", "family or friend", "parent", "other individual", "anonymous", "other")
"""Whose voice a referral carries, as the audit groups referrers."""


def referrer_voice(referrer_type: str, relationship: str | None) -> str:
    """Whose voice a referral carries: one of ``VOICES``."""
    if referrer_type in PROFESSIONAL_REFERRERS:
        return "professional"
    if referrer_type == ReferrerType.anonymous:
        return "anonymous"
    if referrer_type != ReferrerType.individual:
        return "other"
    if relationship in RELATIVE_OR_FRIEND:
        return "family or friend"
    if relationship == ReferrerRelationship.parent:
        return "parent"
    return "other individual"


class Concern(StrEnum):
    """Concern categories raised by a referral."""

    physical_abuse = "physical_abuse"
    neglect = "neglect"
    emotional_abuse = "emotional_abuse"
    sexual_abuse = "sexual_abuse"
    domestic_abuse = "domestic_abuse"
    parental_mental_health = "parental_mental_health"
    parental_substance_misuse = "parental_substance_misuse"
    child_mental_health = "child_mental_health"
    exploitation = "exploitation"
    missing = "missing"
    other = "other"


class InjurySite(StrEnum):
    """Body sites of a reported injury."""

    head_face_neck = "head_face_neck"
    torso_back = "torso_back"
    limbs = "limbs"
    genital_anal = "genital_anal"
    other = "other"


class Agency(StrEnum):
    """Agencies that record contacts with a child or household."""

    police = "police"
    health = "health"
    school = "school"
    housing = "housing"
    social_care = "social_care"


class EventKind(StrEnum):
    """Agency event kinds; ``EVENT_AGENCY`` says which agency records each."""

    domestic_abuse_incident = "domestic_abuse_incident"
    child_concern_notification = "child_concern_notification"
    adult_violence_offence = "adult_violence_offence"
    missing_episode = "missing_episode"
    ed_attendance = "ed_attendance"
    ed_injury_attendance = "ed_injury_attendance"
    missed_appointment = "missed_appointment"
    gp_concern = "gp_concern"
    health_visitor_concern = "health_visitor_concern"
    absence_concern = "absence_concern"
    safeguarding_concern = "safeguarding_concern"
    exclusion = "exclusion"
    homelessness = "homelessness"
    eviction = "eviction"
    assessment_nfa = "assessment_nfa"
    child_in_need = "child_in_need"
    s47_enquiry = "s47_enquiry"
    cp_plan_start = "cp_plan_start"
    cp_plan_end = "cp_plan_end"
    looked_after_start = "looked_after_start"
    # About an adult (``person_id``), since vocabulary 2.
    domestic_abuse_perpetrator = "domestic_abuse_perpetrator"
    domestic_abuse_victim = "domestic_abuse_victim"
    probation_supervision = "probation_supervision"
    marac_case = "marac_case"
    adult_mental_health_contact = "adult_mental_health_contact"
    substance_misuse_treatment = "substance_misuse_treatment"
    care_proceedings = "care_proceedings"
    child_removed = "child_removed"
    # Who lives with the child: ``person_id``, ``household_id`` and a ``role`` attribute.
    adult_joined_household = "adult_joined_household"
    adult_left_household = "adult_left_household"


EVENT_AGENCY: dict[EventKind, Agency] = {
    EventKind.domestic_abuse_incident: Agency.police,
    EventKind.child_concern_notification: Agency.police,
    EventKind.adult_violence_offence: Agency.police,
    EventKind.missing_episode: Agency.police,
    EventKind.ed_attendance: Agency.health,
    EventKind.ed_injury_attendance: Agency.health,
    EventKind.missed_appointment: Agency.health,
    EventKind.gp_concern: Agency.health,
    EventKind.health_visitor_concern: Agency.health,
    EventKind.absence_concern: Agency.school,
    EventKind.safeguarding_concern: Agency.school,
    EventKind.exclusion: Agency.school,
    EventKind.homelessness: Agency.housing,
    EventKind.eviction: Agency.housing,
    EventKind.assessment_nfa: Agency.social_care,
    EventKind.child_in_need: Agency.social_care,
    EventKind.s47_enquiry: Agency.social_care,
    EventKind.cp_plan_start: Agency.social_care,
    EventKind.cp_plan_end: Agency.social_care,
    EventKind.looked_after_start: Agency.social_care,
    EventKind.domestic_abuse_perpetrator: Agency.police,
    EventKind.domestic_abuse_victim: Agency.police,
    # Probation and MARAC share through the police feed in this vocabulary.
    EventKind.probation_supervision: Agency.police,
    EventKind.marac_case: Agency.police,
    # Adult mental-health and substance-misuse services share through the health feed.
    EventKind.adult_mental_health_contact: Agency.health,
    EventKind.substance_misuse_treatment: Agency.health,
    EventKind.care_proceedings: Agency.social_care,
    EventKind.child_removed: Agency.social_care,
    EventKind.adult_joined_household: Agency.social_care,
    EventKind.adult_left_household: Agency.social_care,
}

PERSON_EVENT_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.domestic_abuse_perpetrator,
        EventKind.domestic_abuse_victim,
        EventKind.adult_violence_offence,
        EventKind.probation_supervision,
        EventKind.marac_case,
        EventKind.adult_mental_health_contact,
        EventKind.substance_misuse_treatment,
        EventKind.care_proceedings,
        EventKind.child_removed,
    }
)
"""Kinds that may name an adult (``person_id``); ``adult_violence_offence`` may also be a
household event without a person, as in vocabulary 1."""
MEMBERSHIP_EVENT_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.adult_joined_household, EventKind.adult_left_household}
)
"""Kinds that change who lives in a household: they need ``person_id``, ``household_id`` and
``attributes.role``."""
ADULT_RISK_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.adult_violence_offence,
        EventKind.domestic_abuse_perpetrator,
        EventKind.probation_supervision,
    }
)
"""An adult with one of these records joining a child's household is a signal of its own."""
PARENT_HISTORY_KINDS: frozenset[EventKind] = frozenset(
    {EventKind.care_proceedings, EventKind.child_removed}
)
"""A parent's earlier children: care proceedings, or a child removed."""


class HouseholdRole(StrEnum):
    """A person's place in a household, as the child protection record describes it."""

    parent = "parent"
    step_parent = "step_parent"
    parent_partner = "parent_partner"
    other_relative = "other_relative"
    unrelated_adult = "unrelated_adult"
    child = "child"


ADULT_ROLES: tuple[HouseholdRole, ...] = (
    HouseholdRole.parent,
    HouseholdRole.step_parent,
    HouseholdRole.parent_partner,
    HouseholdRole.other_relative,
    HouseholdRole.unrelated_adult,
)
UNRELATED_ROLES: tuple[HouseholdRole, ...] = (
    HouseholdRole.parent_partner,
    HouseholdRole.unrelated_adult,
)
"""Adults not related to the child: a parent's partner who is not a step-parent, or a lodger,
friend or other unrelated adult (Stiffman 2002; Schnitzer & Ewigman 2005)."""


class DecisionKind(StrEnum):
    """Front-door decisions a practitioner records on a referral."""

    no_further_action = "no_further_action"
    information_advice = "information_advice"
    early_help = "early_help"
    assessment = "assessment"
    strategy_discussion = "strategy_discussion"
    immediate_protection = "immediate_protection"
    refer_other_agency = "refer_other_agency"


class OutcomeLevel(StrEnum):
    """Highest level of intervention reached after a referral (the DfE outcome funnel)."""

    no_further_action = "no_further_action"
    not_in_need = "not_in_need"
    child_in_need = "child_in_need"
    s47_enquiry = "s47_enquiry"
    initial_conference = "initial_conference"
    cp_plan = "cp_plan"


class PlanCategory(StrEnum):
    """Initial category of a child protection plan."""

    neglect = "neglect"
    emotional_abuse = "emotional_abuse"
    physical_abuse = "physical_abuse"
    sexual_abuse = "sexual_abuse"
    multiple = "multiple"


class Sex(StrEnum):
    """Recorded sex."""

    female = "female"
    male = "male"
    unknown = "unknown"


class Ethnicity(StrEnum):
    """Top-level census ethnic groups."""

    white = "white"
    mixed = "mixed"
    asian = "asian"
    black = "black"
    other = "other"
    not_stated = "not_stated"


PROTECTED_ATTRIBUTES: tuple[str, ...] = ("ethnicity", "sex", "disability", "deprivation_decile")
"""Audited, never model inputs by default."""

LIST_SEPARATOR = ";"
"""How list-valued fields (concerns, injury sites) are written in CSV and Parquet extracts."""
CHILD_MEMBERSHIP_PREFIX = "child:"
"""A child's membership of the household it was first known in: ``child:<child_id>`` (as
migration 0008 back-fills, and as memberships are derived for an extract without them)."""

GENERAL_REASON_CODES: dict[str, str] = {
    "professional_judgement": "Professional judgement from the referral as a whole",
    "information_not_in_records": "Information the records do not hold (e.g. from the referrer)",
    "record_inaccurate": "A record behind the score is wrong or about someone else",
    "risk_already_managed": "The risk is already being managed by another service",
}
"""Decision reason codes beyond the signals' names (which are codes too), with their words."""


class Priority(StrEnum):
    """The practitioner's own priority for a referral, on the queue's four bands (highest first)."""

    review_first = "review_first"
    elevated = "elevated"
    standard = "standard"
    lower_band = "lower"  # not `lower`: that would hide str.lower on every member


PRIORITY_BANDS: dict[Priority, str] = {
    Priority.review_first: "Review first",
    Priority.elevated: "Elevated",
    Priority.standard: "Standard",
    Priority.lower_band: "Lower",
}
"""Each priority's band name, in the queue's order (``triage.queue.BANDS``)."""

CLOSING_DECISIONS: frozenset[DecisionKind] = frozenset(
    {DecisionKind.no_further_action, DecisionKind.information_advice}
)
"""Decisions that close the front door's involvement (no further action, or advice only)."""

PRACTICE_REASON_CODES: dict[str, str] = {
    "injury_or_harm_described": "An injury or harm is described",
    "child_disclosure": "The child has said something about harm",
    "child_age_or_vulnerability": "The child's age or vulnerability (a baby, a disability)",
    "pattern_of_concerns": "A pattern of concerns over time",
    "concerns_from_several_agencies": "Concerns come from more than one agency",
    "risk_from_an_adult": "Risk from an adult in or around the household",
    "parent_capacity_concern": "Doubt about a parent's or carer's capacity to keep the child safe",
    "protective_factors": "Protective factors: a safe adult, a family that engages",
    "needs_met_by_universal_services": "Needs can be met by school, GP or health visitor",
    "already_open_to_a_service": "Already open to a social worker or another service",
    "agency_checks_reassure": "Checks with other agencies reassure",
    "agency_checks_raise_concern": "Checks with other agencies raise concern",
    "information_not_in_records": "Information the records do not hold (e.g. from the referrer)",
    "record_inaccurate": "A record behind the score is wrong or about someone else",
}
"""Decision reason codes from front-door practice (not the model's signals), with their words.

The page offers these; the API still accepts any snake_case code (older clients send signal
names), and the researchers' export reads an unknown code as ``other``."""
