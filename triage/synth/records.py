"""Human-looking records: names from Faker's locale data, referrers, and templated narratives."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from faker import Faker

from triage.vocab import Concern, Ethnicity

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
TWIN_NAME_STREAM = 2102
"""Random stream for renaming a twin who drew its twin's name (the world's draws unchanged)."""


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
    ethnicity: np.ndarray,
    male: np.ndarray,
    household: np.ndarray,
    seed: int,
    rng: np.random.Generator,
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


def distinct_twin_names(
    given: np.ndarray, household: np.ndarray, dob: np.ndarray, male: np.ndarray, seed: int
) -> np.ndarray:
    """``given`` with a twin who drew its twin's name renamed (another child's of its sex)."""
    keys = pd.DataFrame({"household": household, "dob": dob, "given": given})
    clash = np.flatnonzero(keys.duplicated(["household", "dob", "given"]).to_numpy())
    if clash.size == 0:
        return given
    rng = np.random.default_rng([seed, TWIN_NAME_STREAM])
    out = given.copy()
    for row in clash.tolist():
        same_sex = np.flatnonzero(male == male[row])
        while out[row] == given[row]:
            out[row] = given[same_sex[rng.integers(0, same_sex.size)]]
    return out


def draw_given_names(
    ethnicity: np.ndarray, male: np.ndarray, seed: int, rng: np.random.Generator
) -> np.ndarray:
    """Given names by ethnic group (a locale of the group) and sex."""
    given = np.empty(ethnicity.size, dtype=object)
    for code, group in enumerate(tuple(Ethnicity)):
        locales = ETHNICITY_LOCALES[group]
        rows = np.flatnonzero(ethnicity == code)
        loc_pick = rng.integers(0, len(locales), rows.size)
        for li, locale in enumerate(locales):
            for sex_flag, kind in ((False, "female"), (True, "male")):
                sel = rows[(loc_pick == li) & (male[rows] == sex_flag)]
                pool = np.asarray(name_pool(locale, kind, seed), dtype=object)
                given[sel] = pool[rng.integers(0, pool.size, sel.size)]
    return given


def draw_family_names(ethnicity: np.ndarray, seed: int, rng: np.random.Generator) -> np.ndarray:
    """Family names by ethnic group (a locale of the group)."""
    family = np.empty(ethnicity.size, dtype=object)
    for code, group in enumerate(tuple(Ethnicity)):
        locales = ETHNICITY_LOCALES[group]
        rows = np.flatnonzero(ethnicity == code)
        loc_pick = rng.integers(0, len(locales), rows.size)
        for li, locale in enumerate(locales):
            sel = rows[loc_pick == li]
            pool = np.asarray(name_pool(locale, "family", seed), dtype=object)
            family[sel] = pool[rng.integers(0, pool.size, sel.size)]
    return family


TEMPLATES: dict[Concern, tuple[str, ...]] = {
    # Keyed by the concern the referrer raised, never by the latent reason behind it: the
    # narrative must not reveal what the world knows and the front door does not.
    Concern.physical_abuse: (
        "{who} noticed marks on {name} and asks whether the account given fits them.",
        "{who} reports an injury to {name} and is checking whether there are previous concerns.",
        "{who} reports {name} said an adult at home hurt them.",
    ),
    Concern.neglect: (
        "{who} reports that {name} often arrives hungry and in the same unwashed clothes.",
        "{who} is worried about {name}'s care at home and missed appointments.",
    ),
    Concern.emotional_abuse: (
        "{who} reports that {name} is withdrawn and frightened of going home.",
        "{who} heard {name} being shouted at and belittled.",
    ),
    Concern.sexual_abuse: (
        "{who} reports {name} said something that raises concern of sexual harm.",
        "{who} is concerned about {name}'s contact with an older adult.",
    ),
    Concern.domestic_abuse: (
        "{who} reports a domestic incident at the home; {name} was present.",
        "{who} is worried about arguments and violence between adults where {name} lives.",
    ),
    Concern.parental_mental_health: (
        "{who} is concerned that a parent's mental health is affecting care of {name}.",
    ),
    Concern.parental_substance_misuse: (
        "{who} reports a parent appeared intoxicated while caring for {name}.",
        "{who} is worried about drug or alcohol use in the home where {name} lives.",
    ),
    Concern.child_mental_health: (
        "{who} is concerned about {name}'s low mood and talk of self-harm.",
    ),
    Concern.exploitation: (
        "{who} is concerned {name} is spending time with older people linked to crime.",
    ),
    Concern.missing: ("{who} reports {name} went missing overnight.",),
    Concern.other: (
        "{who} asks for advice about {name}'s wellbeing at home.",
        "{who} has a general worry about {name} and asks whether the family is known.",
    ),
}
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
    concerns: np.ndarray, who_keys: np.ndarray, given: np.ndarray, rng: np.random.Generator
) -> list[str]:
    """One short narrative per referral from the templates of its first concern raised."""
    order = tuple(Concern)
    first = np.argmax(concerns, axis=1)
    pick = rng.random(first.size)
    templates = [TEMPLATES[order[c]] for c in range(len(order))]
    return [
        SYNTHETIC_PREFIX + templates[c][int(p * len(templates[c]))].format(who=WHO[w], name=g)
        for c, w, g, p in zip(
            first.tolist(), who_keys.tolist(), given.tolist(), pick.tolist(), strict=True
        )
    ]
