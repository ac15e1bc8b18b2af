"""Lay out persons and household memberships as extract tables (what the agencies recorded)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from triage.synth.arrow import frame, labels, prefixed, timestamps_or_null
from triage.synth.people import ROLES, People
from triage.synth.population import Population
from triage.synth.records import draw_family_names, draw_given_names
from triage.synth.spells import OPEN
from triage.vocab import HouseholdRole, Sex

PERSON_PREFIX = "PER-"
SHARED_FAMILY_NAME = {
    HouseholdRole.parent: 0.85,
    HouseholdRole.other_relative: 0.6,
}
"""Chance an adult in this role shares the family name of the children's birth household."""


@dataclass
class PeopleIds:
    """Where each adult sits in ``persons`` (-1: not in the extract) and its identifier."""

    position: np.ndarray
    ids: pa.Array


def adults_in_scope(people: People, hh_pos: np.ndarray, window: float) -> np.ndarray:
    """Adults who lived in a household of the extract during the window (sorted)."""
    m = people.memberships
    inside = (hh_pos[m.household] >= 0) & (m.joined < window) & (m.left > 0)
    scope = np.zeros(people.adults.sex.size, dtype=bool)
    scope[m.person[inside]] = True
    return np.flatnonzero(scope)


def recorded_adult_rows(people: People, hh_pos: np.ndarray, window: float) -> np.ndarray:
    """Adult memberships the agencies recorded in the extract's households."""
    m = people.memberships
    rows: np.ndarray = np.flatnonzero(
        m.recorded & (hh_pos[m.household] >= 0) & (m.joined < window) & (m.left > 0)
    )
    return rows


def person_ids(people: People, adults: np.ndarray) -> PeopleIds:
    """Identifiers ``PER-00000042`` for ``adults`` (sorted), in their order."""
    position = np.full(people.adults.sex.size, -1, dtype=np.int64)
    position[adults] = np.arange(adults.size)
    return PeopleIds(position, prefixed(PERSON_PREFIX, np.arange(adults.size), 8))


def persons_table(
    pop: Population,
    people: People,
    adults: np.ndarray,
    ids: PeopleIds,
    children: pd.DataFrame,
    birth_household: np.ndarray,
    start: date,
    seed: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Children (``person_id`` = ``child_id``) then adults, with names, birth dates and sex."""
    a = people.adults
    home = people.origin[a.household[adults]]
    household_name = np.empty(people.origin.size, dtype=object)
    household_name[birth_household] = children["family_name"].to_numpy()
    first_role = people.memberships.role[adults]  # each adult's first membership row
    share = np.zeros(adults.size)
    for role, p in SHARED_FAMILY_NAME.items():
        share[first_role == ROLES.index(role)] = p
    own = draw_family_names(pop.hh_ethnicity[home], seed, rng)
    known_name = household_name[home]
    shared = (rng.random(adults.size) < share) & (known_name != None)  # noqa: E711
    family = np.where(shared, known_name, own)
    male = a.sex[adults] == 1
    given = draw_given_names(pop.hh_ethnicity[home], male, seed, rng)
    dob_days = np.floor(a.dob[adults]).astype("timedelta64[D]")
    sexes = [s.value for s in Sex]
    adult_frame = pd.DataFrame(
        {
            "person_id": ids.ids.to_pandas(types_mapper=pd.ArrowDtype),
            "is_child": False,
            "given_name": pd.array(given.tolist(), dtype="string[pyarrow]"),
            "family_name": pd.array(family.tolist(), dtype="string[pyarrow]"),
            "date_of_birth": np.datetime64(start.isoformat(), "D") + dob_days,
            "sex": pd.array([sexes[s] for s in a.sex[adults].tolist()], dtype="string[pyarrow]"),
            "synthetic": True,
        }
    )
    child_frame = pd.DataFrame(
        {
            "person_id": children["child_id"],
            "is_child": True,
            "given_name": children["given_name"],
            "family_name": children["family_name"],
            "date_of_birth": children["date_of_birth"],
            "sex": children["sex"],
            "synthetic": True,
        }
    )
    table = pa.concat_tables(
        [
            pa.Table.from_pandas(child_frame, preserve_index=False),
            pa.Table.from_pandas(adult_frame, preserve_index=False).cast(
                pa.Table.from_pandas(child_frame, preserve_index=False).schema
            ),
        ]
    )
    out: pd.DataFrame = table.to_pandas()
    return out


def memberships_table(
    pop: Population,
    people: People,
    adult_rows: np.ndarray,
    ids: PeopleIds,
    child_pos: np.ndarray,
    child_ids: pa.Array,
    hh_pos: np.ndarray,
    hh_ids: pa.Array,
    start: date,
) -> pd.DataFrame:
    """Children's stays, then the adult memberships the agencies recorded."""
    window = pop.window_days
    s = people.stays
    kept = np.flatnonzero((child_pos[s.child] >= 0) & (s.joined < window))
    child, household = s.child[kept], s.household[kept]
    birth = s.joined[kept] == pop.child_dob[child]
    # A child's first membership starts on the day of birth, as ``date_of_birth`` says.
    c_joined = np.where(birth, np.floor(s.joined[kept]), s.joined[kept])
    m = people.memberships
    joined = np.concatenate([c_joined, m.joined[adult_rows]])
    left = np.concatenate([s.left[kept], m.left[adult_rows]])
    n = joined.size
    person = pa.concat_arrays(
        [
            child_ids.take(pa.array(child_pos[child])),
            ids.ids.take(pa.array(ids.position[m.person[adult_rows]])),
        ]
    )
    roles = [r.value for r in ROLES]
    role = np.concatenate(
        [np.full(kept.size, ROLES.index(HouseholdRole.child)), m.role[adult_rows]]
    )
    return frame(
        {
            "membership_id": prefixed("MEM-", np.arange(n), 8),
            "person_id": person,
            "household_id": hh_ids.take(
                pa.array(hh_pos[np.concatenate([household, m.household[adult_rows]])])
            ),
            "role": labels(roles, role),
            "joined_at": timestamps_or_null(start, joined, np.ones(n, dtype=bool)),
            "left_at": timestamps_or_null(start, left, (left != OPEN) & (left < window)),
            "synthetic": np.ones(n, dtype=bool),
        }
    )
