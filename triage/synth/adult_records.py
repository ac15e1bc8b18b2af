"""What agencies record about adults: offences, abuse, services, earlier children, and moves.

Each agency knows each adult with its own probability; a known adult's history leaves
records at its own rates, in the household the adult lives in at the time (none before the
adult joins a household of the world). Membership records (joined, left) mirror the
memberships the agencies know of (``Memberships.recorded``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage.synth.people import People
from triage.synth.population import ADULT_AGE_DAYS, YEAR, Population
from triage.synth.spells import OPEN
from triage.vocab import EventKind

K = EventKind
EVENT_KINDS: tuple[EventKind, ...] = tuple(EventKind)
HISTORY_YEARS = 3.0
"""Police and health records reach this far back before the window."""
CARE_HISTORY_YEARS = 15.0
"""Social care records of earlier proceedings reach this far back before the window."""
KNOWN = {"police": 0.85, "health": 0.6, "social_care": 0.9}
"""Chance each agency knows an adult whose history it would record."""
RATES_PER_YEAR = {
    K.adult_violence_offence: 0.4,
    K.domestic_abuse_perpetrator: 0.35,
    K.adult_mental_health_contact: 0.3,
    K.substance_misuse_treatment: 0.2,
}
VICTIM_RECORD_PROBABILITY = 0.8
MARAC_PROBABILITY = 0.12
"""Share of recorded domestic-abuse victims assessed as high risk and heard at a MARAC."""
PROBATION_PROBABILITY = 0.2
CHILD_REMOVED_PROBABILITY = 0.75


@dataclass
class PersonEvents:
    """Events about adults: person, household (-1: none), time, kind, role (-1: none)."""

    person: np.ndarray
    household: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    role: np.ndarray


def household_of(people: People, person: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The household each adult lives in at ``t`` (the truth), or -1."""
    m = people.memberships
    # Each adult's first membership is row ``person``; the other parent's second follows all.
    n = people.adults.sex.size
    extra = np.arange(n, m.person.size)
    second = np.full(n, -1, dtype=np.int64)
    second[m.person[extra]] = extra
    out = np.full(person.size, -1, dtype=np.int64)
    for rows in (person, second[person]):
        ok = rows >= 0
        safe = np.where(ok, rows, 0)
        inside = ok & (m.joined[safe] <= t) & (m.left[safe] > t)
        out[inside] = m.household[safe][inside]
    return out


def _poisson(
    rng: np.random.Generator, who: np.ndarray, per_year: np.ndarray, t0: np.ndarray, t1: float
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of a Poisson process per adult over ``[t0, t1)``: (adult, time)."""
    length = np.clip(t1 - t0, 0.0, None)
    counts = rng.poisson(per_year / YEAR * length)
    row = np.repeat(np.arange(who.size), counts)
    return who[row], t0[row] + rng.random(row.size) * length[row]


def draw_person_events(
    pop: Population,
    people: People,
    adults: np.ndarray,
    households: np.ndarray,
    rng: np.random.Generator,
    surveillance_bias: float,
) -> PersonEvents:
    """Records about ``adults`` and the recorded membership changes in ``households``."""
    window = pop.window_days
    a = people.adults
    n = adults.size
    known = {agency: rng.random(n) < p for agency, p in KNOWN.items()}
    surveillance = np.exp(0.5 * surveillance_bias * pop.hh_deprived[a.household[adults]])
    since = np.maximum(a.dob[adults] + ADULT_AGE_DAYS, -HISTORY_YEARS * YEAR)
    parts: list[tuple[np.ndarray, np.ndarray, EventKind]] = []

    def records(flag: np.ndarray, agency: str, kind: EventKind) -> tuple[np.ndarray, np.ndarray]:
        sel = flag[adults] & known[agency]
        who, t = _poisson(
            rng, adults[sel], RATES_PER_YEAR[kind] * surveillance[sel], since[sel], window
        )
        parts.append((who, t, kind))
        return who, t

    offender, offence_t = records(a.violent, "police", K.adult_violence_offence)
    perpetrator, abuse_t = records(a.perpetrator, "police", K.domestic_abuse_perpetrator)
    records(a.mental_health, "health", K.adult_mental_health_contact)
    records(a.substance, "health", K.substance_misuse_treatment)

    # Probation after some offences.
    supervised = rng.random(offender.size) < PROBATION_PROBABILITY
    parts.append(
        (
            offender[supervised],
            offence_t[supervised] + rng.uniform(30, 150, int(supervised.sum())),
            K.probation_supervision,
        )
    )

    # The victim: the household's first parent, when the perpetrator lives with them.
    hh = household_of(people, perpetrator, abuse_t)
    victim = np.where(hh >= 0, people.first_parent[np.maximum(hh, 0)], -1)
    recorded = (victim >= 0) & (victim != perpetrator)
    recorded &= rng.random(victim.size) < VICTIM_RECORD_PROBABILITY
    v_who, v_t = victim[recorded], abuse_t[recorded] + rng.uniform(0, 1, int(recorded.sum()))
    parts.append((v_who, v_t, K.domestic_abuse_victim))
    marac = rng.random(v_who.size) < MARAC_PROBABILITY
    parts.append((v_who[marac], v_t[marac] + rng.uniform(7, 42, int(marac.sum())), K.marac_case))

    # Earlier children: care proceedings years before, usually ending in removal.
    sel = a.prior_removal[adults] & known["social_care"]
    who = adults[sel]
    first_joined = _first_joined(people)[who]
    proceedings = np.minimum(first_joined, window) - rng.uniform(1, 10, who.size) * YEAR
    proceedings = np.maximum(proceedings, a.dob[who] + ADULT_AGE_DAYS)
    kept = proceedings >= -CARE_HISTORY_YEARS * YEAR
    who, proceedings = who[kept], proceedings[kept]
    parts.append((who, proceedings, K.care_proceedings))
    removed = rng.random(who.size) < CHILD_REMOVED_PROBABILITY
    parts.append(
        (who[removed], proceedings[removed] + rng.uniform(60, 365, int(removed.sum())),
         K.child_removed)
    )  # fmt: skip

    person = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    kind = np.concatenate([np.full(p[0].size, EVENT_KINDS.index(p[2])) for p in parts])
    inside = t < window
    person, t, kind = person[inside], t[inside], kind[inside]
    household = household_of(people, person, t)
    membership = _membership_events(people, households, window)
    return PersonEvents(
        person=np.concatenate([person, membership.person]),
        household=np.concatenate([household, membership.household]),
        t=np.concatenate([t, membership.t]),
        kind=np.concatenate([kind, membership.kind]).astype(np.int16),
        role=np.concatenate([np.full(person.size, -1), membership.role]),
    )


def _first_joined(people: People) -> np.ndarray:
    """When each adult first joined a household."""
    m = people.memberships
    out = np.full(people.adults.sex.size, np.inf)
    np.minimum.at(out, m.person, m.joined)
    return out


def _membership_events(people: People, households: np.ndarray, window: float) -> PersonEvents:
    """``adult_joined_household`` / ``adult_left_household`` for recorded memberships."""
    m = people.memberships
    kept = np.zeros(people.origin.size, dtype=bool)
    kept[households] = True
    mine = m.recorded & kept[m.household]
    joined = mine & (m.joined >= 0) & (m.joined < window)
    left = mine & (m.left >= 0) & (m.left < window) & (m.left != OPEN)
    j, lft = np.flatnonzero(joined), np.flatnonzero(left)
    return PersonEvents(
        person=np.concatenate([m.person[j], m.person[lft]]),
        household=np.concatenate([m.household[j], m.household[lft]]),
        t=np.concatenate([m.joined[j], m.left[lft]]),
        kind=np.concatenate(
            [
                np.full(j.size, EVENT_KINDS.index(K.adult_joined_household)),
                np.full(lft.size, EVENT_KINDS.index(K.adult_left_household)),
            ]
        ),
        role=np.concatenate([m.role[j], m.role[lft]]).astype(np.int64),
    )
