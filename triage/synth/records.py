"""Human-looking records: names from Faker's locale data, referrers, and templated narratives."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from faker import Faker

from triage.synth.channels import Channel
from triage.vocab import Ethnicity

SYNTHETIC_PREFIX = "[synthetic] "
"""Every generated narrative starts with this, so no page or export can pass one off as real."""

ETHNICITY_LOCALES: dict[Ethnicity, tuple[str, ...]] = {
    Ethnicity.white: ("en_GB", "en_IE", "pl_PL"),
    Ethnicity.mixed: ("en_GB", "en_NG"),
    Ethnicity.asian: ("en_IN", "en_PK"),
    Ethnicity.black: ("en_NG", "en_KE"),
    Ethnicity.other: ("tr_TR", "en_GB"),
    Ethnicity.not_stated: ("en_GB",),
}
POOL_SIZE = 300


@lru_cache(maxsize=64)
def name_pool(locale: str, kind: str, seed: int) -> tuple[str, ...]:
    """A deterministic pool of distinct names of one kind (female, male, family) for a locale."""
    fake = Faker(locale)
    fake.seed_instance(seed)
    draw = {
        "female": fake.first_name_female,
        "male": fake.first_name_male,
        "family": fake.last_name,
    }[kind]
    return tuple(dict.fromkeys(draw() for _ in range(POOL_SIZE)))


def draw_names(
    ethnicity: np.ndarray, male: np.ndarray, household: np.ndarray, seed: int, rng
) -> tuple[np.ndarray, np.ndarray]:
    """Given and family names; siblings share the household's family name."""
    n = ethnicity.size
    given = np.empty(n, dtype=object)
    family = np.empty(n, dtype=object)
    groups = tuple(Ethnicity)
    # The family name is drawn once per household, from the household's first child's group.
    uniq_hh, first = np.unique(household, return_index=True)
    hh_family = np.empty(uniq_hh.size, dtype=object)
    for code, group in enumerate(groups):
        locales = ETHNICITY_LOCALES[group]
        rows = np.flatnonzero(ethnicity == code)
        loc_pick = rng.integers(0, len(locales), rows.size)
        hh_rows = np.flatnonzero(ethnicity[first] == code)
        hh_loc = rng.integers(0, len(locales), hh_rows.size)
        for li, locale in enumerate(locales):
            for sex_flag, kind in ((False, "female"), (True, "male")):
                sel = rows[(loc_pick == li) & (male[rows] == sex_flag)]
                pool = np.asarray(name_pool(locale, kind, seed), dtype=object)
                given[sel] = pool[rng.integers(0, pool.size, sel.size)]
            sel_hh = hh_rows[hh_loc == li]
            pool = np.asarray(name_pool(locale, "family", seed), dtype=object)
            hh_family[sel_hh] = pool[rng.integers(0, pool.size, sel_hh.size)]
    family[:] = hh_family[np.searchsorted(uniq_hh, household)]
    return given, family


TEMPLATES: dict[Channel, tuple[str, ...]] = {
    Channel.harm_neglect: (
        "{who} reports that {name} often arrives hungry and in the same unwashed clothes.",
        "{who} is worried about {name}'s weight and that medical appointments keep being missed.",
        "{who} visited and found the home cold, with little food and {name} unsupervised.",
    ),
    Channel.harm_emotional: (
        "{who} reports that {name} is withdrawn and frightened of going home.",
        "{who} heard {name} being shouted at and belittled repeatedly.",
    ),
    Channel.harm_physical: (
        "{who} noticed marks on {name} that the family could not explain.",
        "{who} reports {name} said an adult at home hurt them.",
    ),
    Channel.harm_sexual: (
        "{who} reports {name} made a disclosure that raises concern of sexual harm.",
        "{who} is concerned about {name}'s contact with an older adult.",
    ),
    Channel.harm_multiple: (
        "{who} describes several worries about {name}: poor care at home and unexplained marks.",
    ),
    Channel.domestic_abuse_notification: (
        "{who} attended a domestic incident at the home; {name} was present.",
        "{who} reports a further domestic abuse incident at {name}'s address.",
    ),
    Channel.parental_mental_health: (
        "{who} is concerned that a parent's mental health is affecting care of {name}.",
    ),
    Channel.substance_misuse: (
        "{who} reports a parent appeared intoxicated while caring for {name}.",
        "{who} is worried about drug use in the home where {name} lives.",
    ),
    Channel.child_mental_health: (
        "{who} is concerned about {name}'s low mood and talk of self-harm.",
    ),
    Channel.missing_exploitation: (
        "{who} reports {name} went missing overnight and returned with unexplained money.",
        "{who} is concerned {name} is spending time with older young people linked to crime.",
    ),
    Channel.accidental_injury: (
        "{who} saw {name} after a fall; the account fits the injury but is reported as routine.",
        "{who} treated {name} for an injury and is checking whether there are previous concerns.",
    ),
    Channel.school_attendance: (
        "{who} reports {name}'s attendance has fallen sharply this term.",
    ),
    Channel.housing: (
        "{who} reports the family of {name} faces eviction and overcrowded housing.",
    ),
    Channel.wellbeing_other: (
        "{who} asks for advice about {name}'s wellbeing at home.",
        "{who} has a general worry about {name} and asks whether the family is known.",
    ),
    Channel.unfounded: (
        "{who} alleges {name} is being mistreated at the other parent's home.",
        "{who} says {name} is left alone and hit, but gives few details.",
    ),
}  # fmt: skip

WHO: dict[str, str] = {
    "police": "Police",
    "school": "The school's safeguarding lead",
    "education_services": "The education welfare service",
    "health": "A health professional",
    "gp": "The GP",
    "health_visitor": "The health visitor",
    "hospital": "The hospital emergency department",
    "midwife": "The midwife",
    "camhs": "CAMHS",
    "housing": "The housing officer",
    "la_services": "A council service",
    "other_legal": "The youth justice service",
    "individual": "A member of the public",
    "parent": "A parent",
    "relative": "A relative",
    "family_friend": "A family friend",
    "neighbour": "A neighbour",
    "self": "The young person",
    "anonymous": "An anonymous caller",
    "other": "A voluntary organisation",
    "unknown": "A caller",
}


def narratives(
    channel: np.ndarray, who_keys: np.ndarray, given: np.ndarray, rng: np.random.Generator
) -> list[str]:
    """One short narrative per referral from the channel's templates."""
    pick = rng.random(channel.size)
    templates = [TEMPLATES[Channel(c)] for c in range(len(Channel))]
    return [
        SYNTHETIC_PREFIX + templates[c][int(p * len(templates[c]))].format(who=WHO[w], name=g)
        for c, w, g, p in zip(
            channel.tolist(), who_keys.tolist(), given.tolist(), pick.tolist(), strict=True
        )
    ]
