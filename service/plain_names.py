"""Plain names for the vocabularies a page shows: agencies, record kinds, referrers, decisions."""

from __future__ import annotations

from functools import cache

from triage.vocab import (
    Agency,
    DecisionKind,
    EventKind,
    InjurySite,
    ReferrerRelationship,
    ReferrerType,
)

FRONT_DOOR = "front_door"
"""The chronology's own 'agency' for referrals and the front door's decisions."""

AGENCY_NAMES: dict[str, str] = {
    FRONT_DOOR: "Front door",
    Agency.police: "Police",
    Agency.health: "Health",
    Agency.school: "School",
    Agency.housing: "Housing",
    Agency.social_care: "Children's social care",
}

AGENCY_CHOICES: dict[str, str] = AGENCY_NAMES | {FRONT_DOOR: "Front door: referrals and decisions"}
"""How the chronology's agency filter names each choice."""

KIND_NAMES: dict[str, tuple[str, str]] = {
    EventKind.domestic_abuse_incident: ("Domestic abuse incident", "domestic abuse incidents"),
    EventKind.child_concern_notification: (
        "Police notification of concern about the child",
        "police notifications of concern",
    ),
    EventKind.adult_violence_offence: ("Violence offence by an adult", "violence offences"),
    EventKind.missing_episode: ("Child reported missing", "times reported missing"),
    EventKind.ed_attendance: ("Emergency department visit", "emergency department visits"),
    EventKind.ed_injury_attendance: (
        "Emergency department visit for an injury",
        "emergency department visits for an injury",
    ),
    EventKind.missed_appointment: ("Missed health appointment", "missed health appointments"),
    EventKind.gp_concern: ("GP concern", "GP concerns"),
    EventKind.health_visitor_concern: ("Health visitor concern", "health visitor concerns"),
    EventKind.absence_concern: ("School absence concern", "school absence concerns"),
    EventKind.safeguarding_concern: ("School safeguarding concern", "school safeguarding concerns"),
    EventKind.exclusion: ("Excluded from school", "exclusions from school"),
    EventKind.homelessness: ("Family recorded as homeless", "homelessness records"),
    EventKind.eviction: ("Eviction", "evictions"),
    EventKind.assessment_nfa: (
        "Social care assessment closed with no further action",
        "social care assessments closed",
    ),
    EventKind.child_in_need: ("Child in need plan", "child in need plans"),
    EventKind.s47_enquiry: ("Child protection (section 47) enquiry", "section 47 enquiries"),
    EventKind.cp_plan_start: ("Child protection plan started", "child protection plans started"),
    EventKind.cp_plan_end: ("Child protection plan ended", "child protection plans ended"),
    EventKind.looked_after_start: ("Became looked after (in care)", "times became looked after"),
    EventKind.domestic_abuse_perpetrator: (
        "Domestic abuse, as the person alleged to have caused harm",
        "domestic abuse records (alleged to have caused harm)",
    ),
    EventKind.domestic_abuse_victim: (
        "Domestic abuse, as the person harmed",
        "domestic abuse records (as the person harmed)",
    ),
    EventKind.probation_supervision: ("Under probation supervision", "probation records"),
    EventKind.marac_case: ("MARAC case (high-risk domestic abuse)", "MARAC cases"),
    EventKind.adult_mental_health_contact: (
        "Adult mental health service contact",
        "adult mental health service contacts",
    ),
    EventKind.substance_misuse_treatment: (
        "Substance misuse treatment",
        "substance misuse treatment contacts",
    ),
    EventKind.care_proceedings: ("Care proceedings about an earlier child", "care proceedings"),
    EventKind.child_removed: (
        "An earlier child removed from their care",
        "earlier children removed",
    ),
    EventKind.adult_joined_household: ("An adult joined the household", "adults joining"),
    EventKind.adult_left_household: ("An adult left the household", "adults leaving"),
}
"""Each record kind's name, and its plural as a count reads ("5 missed health appointments")."""

REFERRER_NAMES: dict[str, str] = {
    ReferrerType.police: "the police",
    ReferrerType.school: "a school",
    ReferrerType.education_services: "education services",
    ReferrerType.health: "a health professional",
    ReferrerType.housing: "housing services",
    ReferrerType.la_services: "local authority services",
    ReferrerType.other_legal: "another legal agency",
    ReferrerType.individual: "a member of the public",
    ReferrerType.anonymous: "an anonymous caller",
    ReferrerType.other: "another source",
    ReferrerType.unknown: "a source not recorded",
}
RELATIONSHIP_NAMES: dict[str, str] = {
    ReferrerRelationship.gp: "a GP",
    ReferrerRelationship.health_visitor: "a health visitor",
    ReferrerRelationship.hospital: "a hospital",
    ReferrerRelationship.midwife: "a midwife",
    ReferrerRelationship.camhs: "CAMHS (child and adolescent mental health services)",
    ReferrerRelationship.parent: "a parent",
    ReferrerRelationship.relative: "a relative",
    ReferrerRelationship.family_friend: "a family friend",
    ReferrerRelationship.neighbour: "a neighbour",
    ReferrerRelationship.self: "the child themself",
}
DECISION_NAMES: dict[str, str] = {
    DecisionKind.no_further_action: "No further action",
    DecisionKind.information_advice: "Information and advice",
    DecisionKind.early_help: "Early help",
    DecisionKind.assessment: "Assessment",
    DecisionKind.strategy_discussion: "Strategy discussion",
    DecisionKind.immediate_protection: "Immediate protection",
    DecisionKind.refer_other_agency: "Referred to another agency",
}
INJURY_SITE_NAMES: dict[str, str] = {
    InjurySite.head_face_neck: "head, face or neck",
    InjurySite.torso_back: "torso or back",
    InjurySite.limbs: "arms or legs",
    InjurySite.genital_anal: "genital or anal area",
    InjurySite.other: "elsewhere on the body",
}
ROLE_NAMES: dict[str, str] = {
    "parent": "a parent",
    "step_parent": "a step-parent",
    "parent_partner": "a partner of a parent",
    "other_relative": "another relative",
    "unrelated_adult": "an unrelated adult",
    "child": "a child",
}


def _spaced(code: str) -> str:
    return code.replace("_", " ")


def agency_name(code: str) -> str:
    """``Children's social care`` for ``social_care``."""
    return AGENCY_NAMES.get(code, _spaced(code).capitalize())


@cache
def kind_name(code: str, count: int = 1) -> str:
    """A record kind's name; ``count`` above one gives the plural a count reads with."""
    singular, plural = KIND_NAMES.get(code, (_spaced(code).capitalize(), _spaced(code)))
    return singular if count == 1 else plural


def referrer_name(referrer_type: str, relationship: str | None) -> str:
    """Who referred: the relationship when known (``a relative``), else the source."""
    if relationship:
        return RELATIONSHIP_NAMES.get(relationship, _spaced(relationship))
    return REFERRER_NAMES.get(referrer_type, _spaced(referrer_type))


def decision_name(code: str) -> str:
    """``No further action`` for ``no_further_action``."""
    return DECISION_NAMES.get(code, _spaced(code).capitalize())
