"""Why a referral is made: channels, their concerns, injuries and likely referrers.

A channel is the story behind a referral (a maltreatment episode noticed by someone, a police
notification of domestic abuse, an accidental toddler injury seen in hospital, a worried
neighbour who was wrong, a parent in a custody dispute who knowingly made it up). It is
latent: only its visible traces reach the extract.

"Unfounded" is not "malicious": most concerns with no harm behind them are raised in good
faith (``unfounded``); an intentionally false referral is its own, much rarer channel
(``malicious``; about 4% of investigations, 12% where a custody dispute exists: Trocmé & Bala
2005, in ``shared/reference/people-and-voices.md``).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from triage.vocab import Concern, InjurySite, ReferrerRelationship, ReferrerType


class Channel(IntEnum):
    """Latent reason a referral was made."""

    harm_neglect = 0
    harm_emotional = 1
    harm_physical = 2
    harm_sexual = 3
    harm_multiple = 4
    domestic_abuse_notification = 5
    parental_mental_health = 6
    substance_misuse = 7
    child_mental_health = 8
    missing_exploitation = 9
    accidental_injury = 10
    school_attendance = 11
    housing = 12
    wellbeing_other = 13
    unfounded = 14
    """A concern raised in good faith with no maltreatment behind it."""
    malicious = 15
    """An intentionally false referral."""


HARM_CHANNELS = (
    Channel.harm_neglect,
    Channel.harm_emotional,
    Channel.harm_physical,
    Channel.harm_sexual,
    Channel.harm_multiple,
)
"""In the order of ``harm.EPISODE_TYPES``: an episode of type k raises channel k."""

SOURCES: tuple[ReferrerType, ...] = tuple(ReferrerType)
SCHOOL_SOURCES = (ReferrerType.school, ReferrerType.education_services)

_AFFINITY_ROWS: dict[Channel, dict[str, float]] = {
    Channel.harm_neglect: {"police": 5, "school": 35, "education_services": 3, "health": 30,
                           "housing": 5, "la_services": 12, "other_legal": 2, "individual": 5,
                           "anonymous": 2, "other": 3, "unknown": 2},
    Channel.harm_emotional: {"police": 25, "school": 30, "education_services": 2, "health": 12,
                             "housing": 1, "la_services": 12, "other_legal": 5, "individual": 8,
                             "anonymous": 2, "other": 3, "unknown": 2},
    Channel.harm_physical: {"police": 20, "school": 30, "education_services": 2, "health": 30,
                            "la_services": 5, "other_legal": 2, "individual": 8, "anonymous": 2,
                            "other": 2, "unknown": 1},
    Channel.harm_sexual: {"police": 40, "school": 25, "education_services": 2, "health": 15,
                          "la_services": 5, "other_legal": 3, "individual": 6, "anonymous": 2,
                          "other": 2},
    Channel.harm_multiple: {"police": 15, "school": 30, "education_services": 2, "health": 30,
                            "housing": 2, "la_services": 10, "other_legal": 3, "individual": 5,
                            "anonymous": 1, "other": 2},
    Channel.domestic_abuse_notification: {"police": 85, "school": 3, "health": 3,
                                          "la_services": 3, "other_legal": 3, "individual": 2,
                                          "other": 1},
    Channel.parental_mental_health: {"police": 10, "school": 10, "health": 45, "la_services": 20,
                                     "other_legal": 2, "individual": 5, "other": 5,
                                     "unknown": 3},
    Channel.substance_misuse: {"police": 40, "school": 5, "health": 25, "la_services": 15,
                               "other_legal": 5, "individual": 5, "other": 5},
    Channel.child_mental_health: {"police": 10, "school": 35, "health": 35, "la_services": 10,
                                  "individual": 5, "other": 5},
    Channel.missing_exploitation: {"police": 60, "school": 10, "la_services": 20,
                                   "other_legal": 3, "individual": 4, "other": 3},
    Channel.accidental_injury: {"police": 2, "school": 5, "health": 85, "la_services": 3,
                                "individual": 3, "other": 2},
    Channel.school_attendance: {"school": 60, "education_services": 30, "la_services": 5,
                                "other": 5},
    Channel.housing: {"police": 5, "housing": 60, "la_services": 25, "other": 10},
    Channel.wellbeing_other: {"police": 10, "school": 20, "education_services": 3, "health": 15,
                              "housing": 3, "la_services": 25, "other_legal": 4, "individual": 5,
                              "anonymous": 3, "other": 6, "unknown": 6},
    Channel.unfounded: {"police": 3, "school": 8, "health": 5, "la_services": 4,
                        "individual": 45, "anonymous": 25, "other": 5, "unknown": 5},
    Channel.malicious: {"individual": 80, "anonymous": 20},
}  # fmt: skip

SOURCE_AFFINITY = np.array(
    [
        [row.get(source.value, 0.0) for source in SOURCES]
        for _, row in sorted(_AFFINITY_ROWS.items())
    ]
)
"""Channel x source: how likely each kind of referrer is to raise each kind of concern."""

CHANNEL_CONCERNS: dict[Channel, tuple[tuple[Concern, float], ...]] = {
    # Referrers rarely name maltreatment cleanly: harm often arrives as "other" or as a
    # parental concern, and concerns without harm behind them borrow the same words.
    Channel.harm_neglect: (
        (Concern.neglect, 0.6),
        (Concern.other, 0.3),
        (Concern.emotional_abuse, 0.1),
    ),
    Channel.harm_emotional: (
        (Concern.emotional_abuse, 0.5),
        (Concern.domestic_abuse, 0.2),
        (Concern.other, 0.3),
    ),
    Channel.harm_physical: ((Concern.physical_abuse, 0.75), (Concern.other, 0.2)),
    Channel.harm_sexual: (
        (Concern.sexual_abuse, 0.7),
        (Concern.other, 0.3),
        (Concern.emotional_abuse, 0.1),
    ),
    Channel.harm_multiple: (
        (Concern.neglect, 0.6),
        (Concern.physical_abuse, 0.4),
        (Concern.other, 0.2),
    ),
    Channel.domestic_abuse_notification: (
        (Concern.domestic_abuse, 1.0),
        (Concern.emotional_abuse, 0.1),
    ),
    Channel.parental_mental_health: (
        (Concern.parental_mental_health, 1.0),
        (Concern.neglect, 0.15),
    ),
    Channel.substance_misuse: ((Concern.parental_substance_misuse, 1.0), (Concern.neglect, 0.25)),
    Channel.child_mental_health: (
        (Concern.child_mental_health, 1.0),
        (Concern.emotional_abuse, 0.1),
    ),
    Channel.missing_exploitation: ((Concern.missing, 0.7), (Concern.exploitation, 0.5)),
    Channel.accidental_injury: ((Concern.physical_abuse, 1.0),),
    Channel.school_attendance: ((Concern.neglect, 0.5), (Concern.other, 0.5)),
    Channel.housing: ((Concern.other, 1.0), (Concern.neglect, 0.3)),
    Channel.wellbeing_other: (
        (Concern.other, 1.0),
        (Concern.emotional_abuse, 0.2),
        (Concern.neglect, 0.15),
    ),
    Channel.unfounded: (
        (Concern.physical_abuse, 0.4),
        (Concern.neglect, 0.4),
        (Concern.sexual_abuse, 0.1),
        (Concern.emotional_abuse, 0.15),
    ),
    Channel.malicious: (
        (Concern.physical_abuse, 0.4),
        (Concern.neglect, 0.35),
        (Concern.sexual_abuse, 0.2),
        (Concern.emotional_abuse, 0.15),
    ),
}
"""Each channel's concerns, with the chance each is ticked on the referral form."""

INJURY_PROBABILITY = np.array(
    [0.05, 0.02, 0.50, 0.10, 0.30, 0.03, 0.01, 0.02, 0.05, 0.05, 0.95, 0.0, 0.0, 0.02, 0.15, 0.1]
)
"""Chance a referral reports an injury, in ``Channel`` order."""

SITES: tuple[InjurySite, ...] = tuple(InjurySite)
ABUSE_SITES = np.array([0.35, 0.35, 0.22, 0.02, 0.06])
ACCIDENT_SITES = np.array([0.40, 0.05, 0.48, 0.0, 0.07])
SEXUAL_SITES = np.array([0.10, 0.10, 0.05, 0.70, 0.05])

HEALTH_ROLES: tuple[ReferrerRelationship, ...] = (
    ReferrerRelationship.gp,
    ReferrerRelationship.health_visitor,
    ReferrerRelationship.hospital,
    ReferrerRelationship.midwife,
    ReferrerRelationship.camhs,
)
INDIVIDUAL_ROLES: tuple[ReferrerRelationship, ...] = (
    ReferrerRelationship.parent,
    ReferrerRelationship.relative,
    ReferrerRelationship.family_friend,
    ReferrerRelationship.neighbour,
    ReferrerRelationship.self,
)

# Non-harm channel base rates per child-year by age band (infant, pre-school, primary,
# secondary), before household risk, surveillance bias and the overall scale.
NON_HARM_BAND_RATES: dict[Channel, tuple[float, float, float, float]] = {
    Channel.domestic_abuse_notification: (1.0, 1.0, 1.0, 0.8),
    Channel.parental_mental_health: (1.0, 1.0, 0.8, 0.6),
    Channel.substance_misuse: (1.0, 1.0, 0.8, 0.6),
    Channel.child_mental_health: (0.0, 0.0, 0.5, 3.0),
    Channel.missing_exploitation: (0.0, 0.0, 0.1, 2.0),
    Channel.accidental_injury: (0.3, 2.0, 0.4, 0.2),
    Channel.school_attendance: (0.0, 0.0, 0.8, 1.6),
    Channel.housing: (0.4, 0.4, 0.4, 0.4),
    Channel.wellbeing_other: (1.2, 1.2, 1.2, 1.2),
}
