"""People in the household over time (the truth): parents, partners, relatives and lodgers.

Every family starts when its first child is born, to parents living together or to a lone
parent. A second slot beside the first parent then empties (separation) and refills (a new
partner, recorded as a step-parent or as a parent's partner) at the rates of ``WorldParams``;
other relatives and lodgers come and go in slots of their own. Some separations give the
children a second home, and some children go to a grandparent (``moves``). The household's
latent risk factors are carried by people: the partner present when the window opens, or the
next one to join, is the adult with a history of violence or domestic abuse where the
household has one.

The agencies record an adult's membership with a probability that depends on the role
(``Memberships.recorded``); the harm hazard uses everybody who actually lives there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage.synth.adults import (
    BIO,
    LODGER_STAY_YEARS,
    RELATIVE_STAY_YEARS,
    ROLES,
    Group,
    R,
    bern,
    concat,
    earlier_removals,
    first_parents,
    grandparents,
    histories,
    recorded,
    slot_adults,
    slot_spells,
    strain,
    visitor_spells,
    visitors,
)
from triage.synth.composition import (
    COUNTS,
    LODGER,
    PARENT,
    PARTNER,
    PERPETRATOR,
    RELATIVE,
    STEP,
    VIOLENT,
    Composition,
    build_composition,
    time_keys,
)
from triage.synth.harm import HORIZON_DAYS
from triage.synth.moves import (
    ChildStays,
    NewHouseholds,
    Residence,
    child_stays,
    draw_moves,
    household_children,
)
from triage.synth.params import WorldParams
from triage.synth.population import YEAR, Population, logit, sigmoid
from triage.synth.spells import OPEN, Spells
from triage.vocab import HouseholdRole

__all__ = ["ROLES", "Adults", "Memberships", "People", "R", "build_people"]

ROLE_COLUMN = {
    R[HouseholdRole.parent]: PARENT,
    R[HouseholdRole.step_parent]: STEP,
    R[HouseholdRole.parent_partner]: PARTNER,
    R[HouseholdRole.other_relative]: RELATIVE,
    R[HouseholdRole.unrelated_adult]: LODGER,
}
OWN_CHILD_PROBABILITY = 0.9
"""Chance a child born while a partner lives there is that partner's child (a half-sibling)."""


@dataclass
class Adults:
    """Adult persons (the truth), with latent histories the agencies may record."""

    household: np.ndarray
    """The first household each adult lived in."""
    sex: np.ndarray
    dob: np.ndarray
    violent: np.ndarray
    perpetrator: np.ndarray
    mental_health: np.ndarray
    substance: np.ndarray
    prior_removal: np.ndarray
    """An earlier child was the subject of care proceedings, usually removed."""


@dataclass
class Memberships:
    """Adult memberships (the truth): who lived where, in which role, and whether it is known."""

    person: np.ndarray
    household: np.ndarray
    role: np.ndarray
    joined: np.ndarray
    left: np.ndarray
    recorded: np.ndarray


@dataclass
class People:
    """Everybody's household over time, as the generator knows it."""

    adults: Adults
    memberships: Memberships
    stays: ChildStays
    residence: Residence
    hh_start: np.ndarray
    """Day from which each household is in the world (0, or when a new one was set up)."""
    own_parent: np.ndarray
    """Per child: a partner or step-parent membership that is the child's own parent, or -1."""
    origin: np.ndarray
    """Per household: itself, or the birth household a new one was set up from."""
    first_parent: np.ndarray
    """Per household: the adult who is its first parent (-1 for a grandparent's home)."""

    def own_parent_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per child: household, joined, left and count column of its own-parent membership."""
        m, own = self.memberships, self.own_parent
        has = own >= 0
        row = np.maximum(own, 0)
        column = np.where(m.role[row] == R[HouseholdRole.step_parent], STEP, PARTNER)
        return (
            np.where(has, m.household[row], -1),
            np.where(has, m.joined[row], np.inf),
            np.where(has, m.left[row], -np.inf),
            column,
        )


def _keep(spells: Spells, units: np.ndarray, until: float) -> Spells:
    """Spells that overlap the window, with ``unit`` mapped to household ids."""
    keep = (spells.left > 0) & (spells.joined < until)
    return Spells(
        units[spells.unit[keep]], spells.kind[keep], spells.joined[keep], spells.left[keep]
    )


def _attributed(spells: Spells, t_ref: np.ndarray) -> np.ndarray:
    """Per household, the slot spell present at ``t_ref`` or the next to begin (indices)."""
    candidate = np.flatnonzero(spells.left > t_ref[spells.unit])
    unit = spells.unit[candidate]  # spells are sorted by unit
    chosen: np.ndarray = candidate[np.r_[True, unit[1:] != unit[:-1]]] if unit.size else unit
    return chosen


def _family_span(pop: Population, until: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Households with children, and per household when the family forms and when it ends."""
    n_hh = pop.hh_deprivation.size
    first, last = household_children(pop)
    families = np.flatnonzero(last > first)
    formed = np.full(n_hh, np.inf)
    formed[families] = np.minimum.reduceat(pop.child_dob, first[families])
    ends = np.full(n_hh, -np.inf)
    youngest = np.maximum.reduceat(pop.child_dob, first[families])
    ends[families] = np.minimum(until, youngest + 18 * YEAR)
    return families, formed, ends


def build_people(
    pop: Population, params: WorldParams, rng: np.random.Generator
) -> tuple[Population, People, Composition]:
    """Draw every household's adults over time and the children's moves; extend ``pop``.

    Also returns who lives in each household from the window's start (``Composition``),
    which only the harm hazard and the population figures need.
    """
    until = pop.window_days + HORIZON_DAYS
    n_hh = pop.hh_deprivation.size
    families, formed, hh_end = _family_span(pop, until)
    f = formed[families]

    # The first parent and the partner slot beside them, from the first birth.
    first = first_parents(families, f, rng)
    strained = strain(pop, families)
    couple = bern(rng, sigmoid(logit(params.couple_at_birth) - strained), families.size)
    kind = np.where(couple, BIO, -1).astype(np.int8)
    slot = slot_spells(f, hh_end[families], kind, first.joined, strained, params, rng)
    slot = _keep(slot, families, until)

    new, move_kind, move_t, move_index = draw_moves(pop, formed, hh_end, slot, BIO, params, rng)
    new_ids = n_hh + np.arange(new.origin.size)
    other = np.flatnonzero(~new.kinship)  # the other parents' homes come first

    # The other parent's home: the other parent, and later perhaps a new partner of theirs.
    o_origin = new.origin[other]
    none = np.full(other.size, -1, dtype=np.int8)
    created = new.created[other]
    o_spells = slot_spells(
        created, hh_end[o_origin], none, created, strain(pop, o_origin), params, rng
    )
    o_spells = _keep(o_spells, new_ids[other], until)

    # Relatives and lodgers in the birth household.
    v_start = np.maximum(f, 0.0)
    rel_rate = np.full(families.size, params.relative_join_rate)
    lodger_rate = params.lodger_join_rate * np.exp(0.5 * pop.hh_deprived[families])
    rel = visitor_spells(v_start, hh_end[families], rel_rate, RELATIVE_STAY_YEARS, rng)
    lodge = visitor_spells(v_start, hh_end[families], lodger_rate, LODGER_STAY_YEARS, rng)

    beside = np.searchsorted(families, slot.unit)
    slot_group = slot_adults(slot, first.sex[beside], first.dob[beside], rng)
    other_parent = slot_group.sex[new.parent_spell[other]][o_spells.unit - n_hh]
    groups = [
        first,
        slot_group,
        slot_adults(o_spells, other_parent, np.zeros(other_parent.size), rng),
        visitors(_keep(rel, families, until), HouseholdRole.other_relative, 0.6,
                 (45, 15, 18, 85), rng),
        visitors(_keep(lodge, families, until), HouseholdRole.unrelated_adult, 0.35,
                 (30, 9, 18, 70), rng),
        grandparents(new_ids[new.kinship], new.created[new.kinship], rng),
    ]  # fmt: skip
    adults, everyone = _adults(pop, new, groups, slot, formed, rng)
    slot_offset = families.size

    # The other parent's second membership: in the home they set up.
    b_rows = new.parent_spell[other] + slot_offset
    memberships = Memberships(
        person=np.concatenate([np.arange(everyone.sex.size), b_rows]),
        household=np.concatenate([everyone.household, new_ids[other]]),
        role=np.concatenate([everyone.role, np.full(other.size, R[HouseholdRole.parent])]),
        joined=np.concatenate([everyone.joined, created]),
        left=np.concatenate([everyone.left, np.full(other.size, OPEN)]),
        recorded=np.concatenate(
            [
                recorded(everyone.role, _deprived_of(pop, new, everyone.household), params, rng),
                np.ones(other.size, dtype=bool),
            ]
        ),
    )
    memberships.role = memberships.role.astype(np.int8)

    pop = _extend(pop, new, adults, b_rows, rng)
    new_household = np.where(move_index >= 0, n_hh + move_index, -1)
    stays, residence = child_stays(pop, move_kind, move_t, new_household)
    composition = build_composition(
        memberships.household,
        memberships.joined,
        memberships.left,
        _columns(memberships, adults),
        since=0.0,
    )
    own = _own_parents(pop, memberships, slot.unit.size, slot_offset, rng)
    people = People(
        adults=adults,
        memberships=memberships,
        stays=stays,
        residence=residence,
        hh_start=np.r_[np.zeros(n_hh), new.created],
        own_parent=own,
        origin=np.r_[np.arange(n_hh), new.origin],
        first_parent=_first_parents(pop.hh_deprivation.size, families, new, b_rows),
    )
    return pop, people, composition


def _first_parents(
    n_households: int, families: np.ndarray, new: NewHouseholds, b_rows: np.ndarray
) -> np.ndarray:
    """Per household, its first parent: the family's first adult, or the other parent."""
    out = np.full(n_households, -1, dtype=np.int64)
    out[families] = np.arange(families.size)  # the first group of adults, in family order
    born_households = n_households - new.origin.size
    out[born_households + np.flatnonzero(~new.kinship)] = b_rows
    return out


def _deprived_of(pop: Population, new: NewHouseholds, households: np.ndarray) -> np.ndarray:
    """Deprivation of each household, a new one taking its birth household's."""
    origin = np.r_[np.arange(pop.hh_deprivation.size), new.origin]
    out: np.ndarray = pop.hh_deprived[origin[households]]
    return out


def _adults(
    pop: Population,
    new: NewHouseholds,
    groups: list[Group],
    slot: Spells,
    formed: np.ndarray,
    rng: np.random.Generator,
) -> tuple[Adults, Group]:
    """Every adult with its history: the household's own risk factors go to its people."""
    everyone = concat(groups)
    deprived = _deprived_of(pop, new, everyone.household)
    drawn = histories(everyone, deprived, rng)
    first = np.arange(groups[0].household.size)
    families = groups[0].household
    drawn["violent"][first] = False
    drawn["perpetrator"][first] = False
    drawn["mental_health"][first] = pop.hh_mental_health[families]
    drawn["substance"][first] = pop.hh_substance_misuse[families]
    chosen = _attributed(slot, np.maximum(formed, 0.0)) + families.size
    drawn["violent"][chosen] = pop.hh_adult_violence[everyone.household[chosen]]
    drawn["perpetrator"][chosen] = pop.hh_domestic_abuse[everyone.household[chosen]]
    trouble = drawn["substance"] | drawn["mental_health"] | drawn["violent"]
    adults = Adults(
        household=everyone.household,
        sex=everyone.sex,
        dob=everyone.dob,
        prior_removal=earlier_removals(everyone.role, trouble, deprived, rng),
        **drawn,
    )
    return adults, everyone


def _columns(memberships: Memberships, adults: Adults) -> np.ndarray:
    """What each membership adds to its household's counts."""
    out = np.zeros((memberships.person.size, COUNTS), dtype=np.int16)
    for role, column in ROLE_COLUMN.items():
        out[memberships.role == role, column] = 1
    out[:, VIOLENT] = adults.violent[memberships.person]
    out[:, PERPETRATOR] = adults.perpetrator[memberships.person]
    return out


def _own_parents(
    pop: Population,
    memberships: Memberships,
    n_slot: int,
    slot_offset: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per child, the partner or step-parent membership living there at its birth (its parent)."""
    rows = slot_offset + np.arange(n_slot)
    rows = rows[memberships.role[rows] != R[HouseholdRole.parent]]
    key = time_keys(memberships.household[rows], memberships.joined[rows])
    order = np.argsort(key)
    rows, key = rows[order], key[order]
    child_key = time_keys(pop.child_household, pop.child_dob)
    idx = np.searchsorted(key, child_key, side="right") - 1
    safe = np.maximum(idx, 0)
    cand = rows[safe] if rows.size else np.zeros(idx.size, dtype=np.int64)
    ok = (
        (idx >= 0)
        & (rows.size > 0)
        & (memberships.household[cand] == pop.child_household)
        & (memberships.left[cand] > pop.child_dob)
        & (rng.random(idx.size) < OWN_CHILD_PROBABILITY)
    )
    return np.where(ok, cand, -1)


def _extend(
    pop: Population,
    new: NewHouseholds,
    adults: Adults,
    b_rows: np.ndarray,
    rng: np.random.Generator,
) -> Population:
    """Append the new households, with risk factors from their origin and their adults."""
    origin, kinship = new.origin, new.kinship
    n = origin.size
    other = ~kinship
    shift = np.rint(rng.normal(0, np.where(kinship, 1.5, 1.0))).astype(np.int64)
    mh = np.zeros(n, dtype=bool)
    sm = np.zeros(n, dtype=bool)
    mh[other] = adults.mental_health[b_rows]
    sm[other] = adults.substance[b_rows]
    mh[kinship] = bern(rng, 0.03, int(kinship.sum()))
    frailty = np.where(
        kinship,
        0.3 * pop.hh_frailty[origin] + rng.normal(-0.5, 0.8, n),
        0.5 * pop.hh_frailty[origin] + np.sqrt(0.75) * rng.standard_normal(n),
    )
    none = np.zeros(n, dtype=bool)
    return pop.with_households(
        hh_deprivation=np.clip(pop.hh_deprivation[origin] + shift, 1, 10),
        hh_ethnicity=pop.hh_ethnicity[origin],
        hh_frailty=frailty,
        hh_domestic_abuse=none,
        hh_mental_health=mh,
        hh_substance_misuse=sm,
        hh_adult_violence=none,
        hh_custody_dispute=other & pop.hh_custody_dispute[origin],
        hh_persistent_caller=none,
    )
