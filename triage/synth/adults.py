"""The adults of the households: who fills each slot, their age and sex, and their histories.

The slots are drawn as spells (``spells``); this module turns spells into adults. A group is
a set of adults with their first membership; ``histories`` gives them latent records and
``recorded`` says which memberships the agencies know of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage.synth.params import WorldParams
from triage.synth.population import YEAR, Population, logit, sigmoid
from triage.synth.spells import OPEN, Spells, alternating_spells
from triage.vocab import HouseholdRole

ROLES: tuple[HouseholdRole, ...] = tuple(HouseholdRole)
R = {role: ROLES.index(role) for role in ROLES}
SLOT_ROLES = np.array(
    [R[HouseholdRole.parent], R[HouseholdRole.step_parent], R[HouseholdRole.parent_partner]],
    dtype=np.int8,
)
"""The partner slot's spell kinds: the other birth parent, a step-parent, a parent's partner."""
BIO = 0
FEMALE, MALE = 0, 1
LONE_FATHER_SHARE = 0.1
"""First parents who are fathers (ONS: about one lone parent in ten is a father)."""
MIXED_SEX_SHARE = 0.97
"""Couples of a man and a woman; the rest are same-sex couples."""
RELATIVE_STAY_YEARS = 3.0
LODGER_STAY_YEARS = 1.0
RECORD_PROBABILITY = {
    HouseholdRole.step_parent: 0.85,
    HouseholdRole.other_relative: 0.7,
}
"""Chance the agencies record an adult in this role; parents are always recorded, partners
and lodgers by ``WorldParams.partner_record_probability``."""


@dataclass
class Group:
    """Adults with their first membership: household, role, joined, left, sex, birth day."""

    household: np.ndarray
    role: np.ndarray
    joined: np.ndarray
    left: np.ndarray
    sex: np.ndarray
    dob: np.ndarray


def concat(groups: list[Group]) -> Group:
    """One group from several, in order."""
    return Group(*(np.concatenate([getattr(g, f) for g in groups]) for f in Group.__annotations__))


def bern(rng: np.random.Generator, p: float | np.ndarray, n: int) -> np.ndarray:
    """Independent draws with probability ``p``."""
    return rng.random(n) < p


def _ages(
    rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float, n: int
) -> np.ndarray:
    """Ages in days, normal and clipped."""
    years: np.ndarray = np.clip(rng.normal(mean, sd, n), lo, hi) * YEAR
    return years


def _partner_sex(rng: np.random.Generator, parent_sex: np.ndarray) -> np.ndarray:
    """The sex of a parent's partner: mostly the other one."""
    mixed = bern(rng, MIXED_SEX_SHARE, parent_sex.size)
    out: np.ndarray = np.where(mixed, 1 - parent_sex, parent_sex)
    return out


def strain(pop: Population, households: np.ndarray) -> np.ndarray:
    """Log-odds shift of lone parenthood and separation: deprivation, abuse, substances."""
    out: np.ndarray = (
        0.3 * pop.hh_deprived[households]
        + 0.9 * pop.hh_domestic_abuse[households]
        + 0.5 * pop.hh_substance_misuse[households]
        + 0.2 * pop.hh_frailty[households]
    )
    return out


def slot_spells(
    start: np.ndarray,
    end: np.ndarray,
    first_kind: np.ndarray,
    first_joined: np.ndarray,
    strained: np.ndarray,
    params: WorldParams,
    rng: np.random.Generator,
) -> Spells:
    """The partner slot beside each unit's first parent (``unit`` indexes the inputs).

    Couples under strain (``strain``) separate more often: a parent leaving an abusive
    partner, above all.
    """
    q = params.step_parent_share
    leave = np.column_stack(
        [
            params.separation_rate * np.exp(strained),
            np.full(start.size, params.step_parent_leave_rate),
            np.full(start.size, params.partner_leave_rate),
        ]
    )
    return alternating_spells(
        start,
        end,
        first_kind,
        first_joined,
        join_rate=np.full(start.size, params.repartner_rate / YEAR),
        kind_shares=np.array([0.0, q, 1 - q]),
        leave_rate=leave / YEAR,
        rng=rng,
    )


def visitor_spells(
    start: np.ndarray,
    end: np.ndarray,
    join_per_year: np.ndarray,
    stay_years: float,
    rng: np.random.Generator,
) -> Spells:
    """Other adults (relatives, lodgers) who come and go; some already live there at ``start``."""
    leave = 1.0 / stay_years
    present = rng.random(start.size) < join_per_year / (join_per_year + leave)
    joined = start - rng.exponential(stay_years * YEAR, start.size)
    return alternating_spells(
        start,
        end,
        np.where(present, 0, -1).astype(np.int8),
        joined,
        join_rate=join_per_year / YEAR,
        kind_shares=np.array([1.0]),
        leave_rate=np.full((start.size, 1), leave / YEAR),
        rng=rng,
    )


def first_parents(households: np.ndarray, formed: np.ndarray, rng: np.random.Generator) -> Group:
    """The parent each family starts with, living there from about the first birth."""
    n = households.size
    return Group(
        household=households,
        role=np.full(n, R[HouseholdRole.parent], dtype=np.int8),
        joined=formed - rng.uniform(0, 1.5 * YEAR, n),
        left=np.full(n, OPEN),
        sex=np.where(bern(rng, LONE_FATHER_SHARE, n), MALE, FEMALE).astype(np.int8),
        dob=formed - _ages(rng, 28.5, 5.5, 16, 46, n),
    )


def slot_adults(
    spells: Spells, parent_sex: np.ndarray, parent_dob: np.ndarray, rng: np.random.Generator
) -> Group:
    """An adult per slot spell: the other birth parent (about the first parent's age), or a
    new partner; ``parent_*`` describe the parent beside each spell."""
    n = spells.unit.size
    bio = spells.kind == BIO
    return Group(
        household=spells.unit,
        role=SLOT_ROLES[spells.kind],
        joined=spells.joined,
        left=spells.left,
        sex=_partner_sex(rng, parent_sex).astype(np.int8),
        dob=np.where(
            bio,
            parent_dob - rng.normal(2.5, 3.5, n) * YEAR,
            spells.joined - _ages(rng, 31, 7, 18, 60, n),
        ),
    )


def visitors(
    spells: Spells,
    role: HouseholdRole,
    female_share: float,
    age: tuple[float, float, float, float],
    rng: np.random.Generator,
) -> Group:
    """An adult per visitor spell (a relative, a lodger), aged ``age`` (mean, sd, lo, hi)."""
    n = spells.unit.size
    return Group(
        household=spells.unit,
        role=np.full(n, R[role], dtype=np.int8),
        joined=spells.joined,
        left=spells.left,
        sex=np.where(bern(rng, female_share, n), FEMALE, MALE).astype(np.int8),
        dob=spells.joined - _ages(rng, *age, n),
    )


def grandparents(households: np.ndarray, created: np.ndarray, rng: np.random.Generator) -> Group:
    """One or two grandparents per kinship household, there long before the children came."""
    two = bern(rng, 0.6, households.size)
    unit = np.concatenate([np.arange(households.size), np.flatnonzero(two)])
    n = unit.size
    return Group(
        household=households[unit],
        role=np.full(n, R[HouseholdRole.other_relative], dtype=np.int8),
        joined=created[unit] - rng.uniform(5 * YEAR, 25 * YEAR, n),
        left=np.full(n, OPEN),
        sex=np.r_[np.full(households.size, FEMALE), np.full(int(two.sum()), MALE)].astype(np.int8),
        dob=created[unit] - _ages(rng, 58, 7, 38, 85, n),
    )


def _tilted(p: float, deprived: np.ndarray, weight: float) -> np.ndarray:
    """A probability ``p`` moved on the log-odds scale by deprivation."""
    return sigmoid(logit(p) + weight * deprived)


def histories(
    adults: Group, deprived: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Latent histories drawn for each adult (the household's own factors are set after).

    Men more often have a history of violence or of abusing a partner; relatives living with
    a family seldom do.
    """
    n = adults.sex.size
    male = adults.sex == MALE
    relative = adults.role == R[HouseholdRole.other_relative]
    violent = bern(rng, np.where(relative, 0.02, _tilted(0.05, deprived, 0.7)), n)
    violent &= bern(rng, np.where(male, 1.0, 0.25), n)
    abuse = bern(rng, np.where(relative, 0.01, _tilted(0.05, deprived, 0.6)), n)
    abuse &= bern(rng, np.where(male, 1.0, 0.3), n)
    return {
        "violent": violent,
        "perpetrator": abuse | (violent & bern(rng, 0.3, n)),
        "mental_health": bern(rng, _tilted(0.08, deprived, 0.4), n),
        "substance": bern(rng, np.where(relative, 0.04, _tilted(0.07, deprived, 0.7)), n),
    }


def earlier_removals(
    role: np.ndarray, trouble: np.ndarray, deprived: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Parents and partners with an earlier child in care proceedings (most with a history)."""
    p = np.where(
        np.isin(role, SLOT_ROLES), sigmoid(logit(0.008) + 1.2 * trouble + 0.5 * deprived), 0.0
    )
    out: np.ndarray = rng.random(role.size) < p
    return out


def recorded(
    role: np.ndarray, deprived: np.ndarray, params: WorldParams, rng: np.random.Generator
) -> np.ndarray:
    """Whether the agencies record each membership: more often where they look more."""
    partner = params.partner_record_probability
    p = np.select(
        [
            role == R[HouseholdRole.step_parent],
            role == R[HouseholdRole.other_relative],
            role == R[HouseholdRole.parent_partner],
            role == R[HouseholdRole.unrelated_adult],
        ],
        [
            RECORD_PROBABILITY[HouseholdRole.step_parent],
            RECORD_PROBABILITY[HouseholdRole.other_relative],
            partner,
            partner * 0.7,
        ],
        1.0,
    )
    odds = np.log(p / np.maximum(1 - p, 1e-9)) + 0.5 * deprived
    out: np.ndarray = (p >= 1.0) | (rng.random(role.size) < sigmoid(odds))
    return out
