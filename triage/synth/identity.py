"""Each agency's view of the people it knows (identity records), with real-world noise.

Every source system that files a referral or an event about a person holds an identity
record for them (a few hold two: duplicates), typed as that agency holds it: typing errors,
nicknames and alternative spellings, a surname changed since, day and month swapped, an NHS
number mostly missing outside health, the postcode of the household when first seen, the
school where education knows it. ``identity_truth`` keeps the true person of each record;
referrals and events name the record they were filed under (``subject_record_id``) beside
their true ``child_id`` / ``person_id``.

Events also get ``recorded_at``: when the agency shared them, after a sharing delay that
depends on the agency.

Every draw here comes from streams of its own, so the rest of the world is unchanged by it.
Rates marked "assumption" are the project's; the others cite their source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from triage.synth.arrow import frame, join, labels, prefixed
from triage.synth.population import YEAR
from triage.vocab import Agency, HouseholdRole

IDENTITY_STREAM = 2103
DELAY_STREAM = 2104

SHARING_DELAY_DAYS: dict[str, float] = {
    # Median days from an event to its sharing with the front door (log-normal, sigma
    # DELAY_SIGMA). Assumptions: schools pass concerns the next day; police notifications
    # of incidents take days to be reviewed and sent; health shares through liaison roles
    # weekly; housing rarely and late. Social care is the council's own case system.
    Agency.school.value: 1.0,
    Agency.police.value: 3.0,
    Agency.health.value: 7.0,
    Agency.housing.value: 14.0,
    Agency.social_care.value: 0.0,
}
DELAY_SIGMA = 1.0
"""Spread of the log-normal sharing delay (assumption): the 90th centile is 3.6 x the median."""


@dataclass(frozen=True)
class Noise:
    """How one agency types a person's details (shares of its records; assumptions unless cited)."""

    prefix: str
    """Prefix of the system's own person IDs."""
    nickname: float
    """A nickname or an alternative spelling, where the name has one."""
    typo: float
    """One keystroke wrong in the given name (the family name twice as often)."""
    dob_swap: float
    """Day and month swapped, where the day is 12 or less."""
    dob_typo: float
    dob_missing: float
    postcode_missing: float
    nhs_child: float
    """Share of children's records with the NHS number."""
    nhs_adult: float
    school: float
    """Share of school-age children's records naming the school."""
    duplicate: float
    """Share of people filed more than once who get a second record."""


NOISE: dict[str, Noise] = {
    # Health traces people against the NHS spine: identifier errors in 0.11% of hospital
    # records for date of birth and sex (Harron et al., BMC Med Res Methodol 17:23, 2017,
    # HES against PDS); the NHS number is nearly always there (assumption: 97%).
    "health-records": Noise("HLT-", 0.02, 0.005, 0.0005, 0.0006, 0.0, 0.02, 0.97, 0.95, 0.0, 0.01),
    "health-referral-hub": Noise("HRH-", 0.03, 0.01, 0.001, 0.001, 0.0, 0.03, 0.9, 0.8, 0.0, 0.01),
    # Police take names and dates of birth as given, often at the door (assumptions).
    "police-records": Noise("POL-", 0.10, 0.03, 0.01, 0.01, 0.03, 0.05, 0.01, 0.01, 0.0, 0.04),
    "police-mash-feed": Noise("PMF-", 0.08, 0.03, 0.01, 0.01, 0.02, 0.05, 0.02, 0.01, 0.0, 0.03),
    # Schools know children by their preferred names; the school is theirs (assumptions).
    "school-safeguarding": Noise(
        "SCS-", 0.06, 0.01, 0.004, 0.004, 0.0, 0.02, 0.03, 0.0, 0.97, 0.02
    ),
    "education-portal": Noise("EDP-", 0.05, 0.01, 0.004, 0.004, 0.0, 0.03, 0.03, 0.0, 0.9, 0.02),
    "housing-records": Noise("HOU-", 0.06, 0.02, 0.008, 0.008, 0.02, 0.01, 0.01, 0.01, 0.0, 0.03),
    # Children on a plan must be matched to NHS numbers before a council joins CP-IS (at
    # least 95%: NHS Digital, CP-IS NHS number matching guidance, 2019); the front door
    # holds far fewer (assumptions: 60% of children, 20% of adults in the case system).
    "social-care-records": Noise(
        "SCR-", 0.04, 0.015, 0.005, 0.005, 0.01, 0.02, 0.6, 0.2, 0.5, 0.02
    ),
    "council-case-system": Noise(
        "CCS-", 0.04, 0.015, 0.005, 0.005, 0.01, 0.03, 0.5, 0.2, 0.4, 0.02
    ),
    # Calls from the public: names as heard, dates of birth often unknown (assumptions).
    "front-door-contact-centre": Noise(
        "FDC-", 0.12, 0.04, 0.015, 0.01, 0.10, 0.10, 0.0, 0.0, 0.1, 0.05
    ),
}
SYSTEMS: tuple[str, ...] = tuple(NOISE)

SURNAME_FROM_PARTNER = 0.3
"""Chance a child under 16 takes the surname of a step-parent or parent's partner who joins
the household, within two years of their joining (assumption)."""
ADULT_SURNAME_CHANGE = 0.03
"""Adults whose surname changes once in the window (marriage, divorce; assumption)."""
HOUSEHOLD_MOVE_SHARE = 0.35
"""Households that move house once in the seven years, changing postcode (assumption)."""
POSTCODES_PER_HOUSEHOLD = 1.0
"""Postcode units per household of the extract: about two in three share a postcode with
another household the agencies know (assumption)."""
NEWBORN_DAYS = 14.0
"""A child first seen by health this young is often still "Baby" (assumption: half)."""
DUPLICATE_LATER_SHARE = 0.5
"""Once a duplicate exists, the share of later filings made under it (assumption)."""

NICKNAMES: dict[str, tuple[str, ...]] = {
    # Common UK short forms and alternative spellings (either way round). No "Will": the
    # tests' personal-data log scan would take a log line's "Will assume ..." for a name.
    "Alexander": ("Alex", "Sandy"), "Alexandra": ("Alex", "Lexi"), "Andrew": ("Andy", "Drew"),
    "Anthony": ("Tony", "Antony"), "Benjamin": ("Ben",), "Catherine": ("Katherine", "Cathy"),
    "Charlotte": ("Lottie", "Charlie"), "Christopher": ("Chris",), "Daniel": ("Dan", "Danny"),
    "David": ("Dave",), "Deborah": ("Debbie", "Debra"), "Edward": ("Ed", "Ted", "Eddie"),
    "Eleanor": ("Ellie", "Elinor"), "Elizabeth": ("Liz", "Beth", "Lizzie"), "Ellie": ("Elle",),
    "Emily": ("Emilie", "Em"), "Frederick": ("Fred", "Freddie"), "Gemma": ("Jemma",),
    "Geoffrey": ("Jeffrey", "Geoff"), "Hannah": ("Hanna",), "Harry": ("Harrison", "Henry"),
    "Isabel": ("Isobel", "Isabelle", "Izzy"), "Isabella": ("Bella", "Izzy"), "Jacob": ("Jake",),
    "James": ("Jim", "Jamie", "Jimmy"), "Jayden": ("Jaden", "Jaiden"), "Jessica": ("Jess",),
    "John": ("Jon", "Johnny", "Jack"), "Jonathan": ("Jon", "Jonny"), "Joseph": ("Joe",),
    "Joshua": ("Josh",), "Katie": ("Katy", "Kate"), "Leah": ("Lea",), "Lewis": ("Louis",),
    "Margaret": ("Maggie", "Peggy"), "Matthew": ("Matt",), "Michael": ("Mike", "Mick"),
    "Mohammed": ("Muhammad", "Mohammad", "Mohamed"), "Muhammad": ("Mohammed", "Mohammad"),
    "Nicholas": ("Nick", "Nicky"), "Oliver": ("Ollie",), "Patrick": ("Pat", "Paddy"),
    "Philip": ("Phillip", "Phil"), "Rebecca": ("Becky", "Rebekah"), "Richard": ("Rich", "Dick"),
    "Robert": ("Rob", "Bob", "Robbie"), "Samuel": ("Sam",), "Samantha": ("Sam", "Sammy"),
    "Sarah": ("Sara",), "Sean": ("Shaun", "Shawn"), "Sophie": ("Sophia", "Sofia"),
    "Stephen": ("Steven", "Steve"), "Steven": ("Stephen", "Steve"), "Thomas": ("Tom", "Tommy"),
    "Victoria": ("Vicky", "Tori"), "William": ("Bill", "Billy", "Liam", "Wills"),
    "Zoe": ("Zoey", "Zoë"), "Hayley": ("Haley", "Hailey"), "Ashley": ("Ashleigh",),
    "Abigail": ("Abbie", "Abby"), "Amelia": ("Millie", "Amy"), "Natasha": ("Tasha",),
    "Jennifer": ("Jenny", "Jen"), "Susan": ("Sue", "Suzanne"), "Kimberley": ("Kim", "Kimberly"),
    "Gareth": ("Gaz",), "Kieran": ("Ciaran",), "Aaliyah": ("Aliyah",), "Niamh": ("Neve",),
}  # fmt: skip
LETTERS = "abcdefghijklmnopqrstuvwxyz"
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
"""Letters a postcode's unit may use (never C, I, K, M, O or V)."""
POSTCODE_AREAS = ("SY", "LD", "TF", "HR", "WR", "GL", "NP", "CF", "SA", "LL")

RECORD_COLUMNS = (
    "record_id", "source_system", "source_person_id", "given_name", "family_name",
    "date_of_birth", "sex", "postcode", "nhs_number", "school", "is_child", "first_seen_at",
)  # fmt: skip


def _arrow(series: pd.Series) -> pa.Array:
    """A string column as one Arrow array."""
    out = pa.array(series)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _id_numbers(series: pd.Series, prefix_length: int) -> np.ndarray:
    """The integers of IDs such as ``C-000042`` (the position the world gave), -1 for nulls."""
    numbers = pc.cast(pc.utf8_slice_codeunits(_arrow(series), prefix_length), pa.int32())
    out: np.ndarray = numbers.fill_null(-1).to_numpy(zero_copy_only=False)
    return out


def _codes(series: pd.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Index of each value in ``vocabulary``."""
    out: np.ndarray = pc.index_in(_arrow(series), pa.array(vocabulary)).to_numpy(
        zero_copy_only=False
    )
    return out.astype(np.int64)


def _micros(series: pd.Series) -> np.ndarray:
    """UTC timestamps as integer microseconds."""
    out: np.ndarray = series.to_numpy(dtype="datetime64[us]").astype(np.int64)
    return out


def sharing_delays(agency: np.ndarray, names: tuple[str, ...], seed: int) -> np.ndarray:
    """Days from each event to its sharing; ``agency`` indexes ``names`` (``Agency`` values)."""
    rng = np.random.default_rng([seed, DELAY_STREAM])
    medians = np.array([SHARING_DELAY_DAYS[a] for a in names])[agency]
    delay: np.ndarray = medians * np.exp(DELAY_SIGMA * rng.standard_normal(agency.size))
    return delay


@dataclass
class Filings:
    """Every referral and event as (system, true person, time, household) integer codes."""

    system: np.ndarray
    person: np.ndarray
    t: np.ndarray
    household: np.ndarray
    n_referrals: int


def _filings(
    referrals: pd.DataFrame, events: pd.DataFrame, n_children: int
) -> tuple[Filings, np.ndarray]:
    """Referrals (about their child) then events (their child's, else their person's).

    Also returns the events about a household alone (no child, no person): filed under no
    identity record.
    """
    child = _id_numbers(events["child_id"], 2)
    adult = _id_numbers(events["person_id"], 4)
    about = np.where(child >= 0, child, np.where(adult >= 0, n_children + adult, -1))
    del child, adult
    anyone = np.r_[np.ones(len(referrals), dtype=bool), about >= 0]
    person = np.concatenate([_id_numbers(referrals["child_id"], 2), about])
    system = np.concatenate(
        [_codes(referrals["source_system"], SYSTEMS), _codes(events["source_system"], SYSTEMS)]
    ).astype(np.int8)
    t = np.concatenate([_micros(referrals["received_at"]), _micros(events["occurred_at"])])
    household = np.concatenate(
        [_id_numbers(referrals["household_id"], 2), _id_numbers(events["household_id"], 2)]
    )
    if not anyone.all():
        person, system, t, household = person[anyone], system[anyone], t[anyone], household[anyone]
    return Filings(system, person, t, household, len(referrals)), anyone


@dataclass
class Records:
    """Identity records as integer codes: whose, where, and which filing first saw them."""

    system: np.ndarray
    person: np.ndarray
    first_row: np.ndarray
    duplicate: np.ndarray
    of_row: np.ndarray
    """Per filing, the record it was filed under (index into these records)."""


def _records(f: Filings, n_persons: int, rng: np.random.Generator) -> Records:
    """One record per system and person, a second for some (later filings may use either)."""
    # A dense (system, person) table instead of sorting ten million keys: filings are in time
    # order within referrals and within events, and no system files both, so a key's lowest
    # row is its first filing and its highest its last.
    key = f.system.astype(np.int64) * n_persons + f.person
    row = np.arange(key.size, dtype=np.int32)
    none = np.iinfo(np.int32).max
    first = np.full(len(SYSTEMS) * n_persons, none, dtype=np.int32)
    np.minimum.at(first, key, row)
    last = np.full(first.size, -1, dtype=np.int32)
    np.maximum.at(last, key, row)
    del row
    present = np.flatnonzero(first != none)
    first_row, last_row = first[present].astype(np.int64), last[present]
    del first, last
    index_of_key = np.full(len(SYSTEMS) * n_persons, -1, dtype=np.int32)
    index_of_key[present] = np.arange(present.size, dtype=np.int32)
    inverse = index_of_key[key]
    del key, index_of_key
    n = first_row.size
    system = f.system[first_row].astype(np.int64)
    last_t = f.t[last_row]
    first_t = f.t[first_row]
    dup_rate = np.array([NOISE[s].duplicate for s in SYSTEMS])[system]
    has_dup = (last_t > first_t) & (rng.random(n) < dup_rate)
    split = first_t + rng.random(n) * (last_t - first_t)
    candidate = has_dup[inverse] & (f.t >= split[inverse])
    rows = np.flatnonzero(candidate)
    rows = rows[rng.random(rows.size) < DUPLICATE_LATER_SHARE]
    big = np.iinfo(np.int64).max
    dup_first = np.full(n, big)
    np.minimum.at(dup_first, inverse[rows], rows)
    made = np.flatnonzero(dup_first < big)
    dup_index = np.full(n, -1)
    dup_index[made] = n + np.arange(made.size)
    of_row = inverse.astype(np.int64)
    del inverse
    of_row[rows] = dup_index[of_row[rows]]
    return Records(
        system=np.concatenate([system, system[made]]),
        person=np.concatenate([f.person[first_row], f.person[first_row][made]]),
        first_row=np.concatenate([first_row, dup_first[made]]),
        duplicate=np.r_[np.zeros(n, dtype=bool), np.ones(made.size, dtype=bool)],
        of_row=of_row,
    )


def _typo(name: str, rng: np.random.Generator) -> str:
    """One keystroke wrong: a letter replaced, dropped, doubled, or two swapped."""
    if len(name) < 3:
        return name + name[-1:]
    i = int(rng.integers(1, len(name) - 1))
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return name[:i] + LETTERS[int(rng.integers(0, 26))] + name[i + 1 :]
    if kind == 1:
        return name[:i] + name[i + 1 :]
    if kind == 2:
        return name[:i] + name[i] + name[i:]
    return name[:i] + name[i + 1] + name[i] + name[i + 2 :]


def _replace(values: pa.Array, rows: np.ndarray, new: list[str | None]) -> pa.Array:
    """``values`` with ``rows`` replaced by ``new``."""
    if rows.size == 0:
        return values
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows)
    replacement = pa.array([new[i] for i in order.tolist()], type=values.type)
    return pc.replace_with_mask(values, pa.array(mask), replacement)


def _noisy_given(
    given: pa.Array, nickname: np.ndarray, typo: np.ndarray, rng: np.random.Generator
) -> pa.Array:
    """Given names with nicknames or alternative spellings, then typing errors."""
    rows = np.flatnonzero(nickname | typo)
    names = given.take(pa.array(rows)).to_pylist()
    out: list[str | None] = []
    for name, nick, slip in zip(names, nickname[rows].tolist(), typo[rows].tolist(), strict=True):
        value = name
        if value is not None and nick and value in NICKNAMES:
            options = NICKNAMES[value]
            value = options[int(rng.integers(0, len(options)))]
        if value is not None and slip:
            value = _typo(value, rng)
        out.append(value)
    return _replace(given, rows, out)


def _noisy_family(family: pa.Array, typo: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Family names with typing errors."""
    rows = np.flatnonzero(typo)
    names = family.take(pa.array(rows)).to_pylist()
    out = [None if n is None else _typo(n, rng) for n in names]
    return _replace(family, rows, out)


def _surname_changes(
    persons: pd.DataFrame,
    memberships: pd.DataFrame,
    n_children: int,
    family: np.ndarray,
    dob: np.ndarray,
    window: tuple[date, date],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Per person, from when (micros; max int: never) a new surname is used, and the name."""
    n = len(persons)
    never = np.iinfo(np.int64).max
    change = np.full(n, never)
    new = np.empty(n, dtype=object)
    role = memberships["role"].to_numpy()
    member = memberships["person_id"]
    is_child = role == HouseholdRole.child.value
    partner = np.isin(role, [HouseholdRole.step_parent.value, HouseholdRole.parent_partner.value])
    stays = pd.DataFrame(
        {
            "child": _id_numbers(member[is_child], 2),
            "household": _id_numbers(memberships["household_id"][is_child], 2),
            "joined": _micros(memberships["joined_at"][is_child]),
        }
    )
    partners = pd.DataFrame(
        {
            "adult": n_children + _id_numbers(member[partner], 4),
            "household": _id_numbers(memberships["household_id"][partner], 2),
            "p_joined": _micros(memberships["joined_at"][partner]),
        }
    )
    both = stays.merge(partners, on="household")
    young = both["p_joined"].to_numpy() < dob[both["child"].to_numpy()] + int(16 * YEAR * 86_400e6)
    both = both[young & (both["p_joined"].to_numpy() >= both["joined"].to_numpy())]
    both = both.sort_values(["child", "p_joined"]).drop_duplicates("child")
    takes = both[rng.random(len(both)) < SURNAME_FROM_PARTNER]
    child = takes["child"].to_numpy()
    after = rng.random(child.size) * 2 * YEAR * 86_400e6
    change[child] = takes["p_joined"].to_numpy() + after.astype(np.int64)
    new[child] = family[takes["adult"].to_numpy()]
    adults = np.arange(n_children, n)
    moved = adults[rng.random(adults.size) < ADULT_SURNAME_CHANGE]
    lo, hi = _span(window)
    change[moved] = rng.integers(lo, hi, moved.size)
    new[moved] = family[rng.integers(0, n, moved.size)]
    return change, new


def _span(window: tuple[date, date]) -> tuple[int, int]:
    """The window as integer microseconds."""
    lo, hi = (int(np.datetime64(d.isoformat(), "us").astype(np.int64)) for d in window)
    return lo, hi


def _postcodes(
    n_households: int, window: tuple[date, date], seed: int
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Per household two postcode codes (before and after a move) and when it moves."""
    rng = np.random.default_rng([seed, IDENTITY_STREAM, 1])
    units = max(100, int(n_households * POSTCODES_PER_HOUSEHOLD))
    code = rng.integers(0, units, (n_households, 2))
    moves = rng.random(n_households) < HOUSEHOLD_MOVE_SHARE
    lo, hi = _span(window)
    moved_at = np.where(moves, rng.integers(lo, hi, n_households), np.iinfo(np.int64).max)
    # Each unit number names one postcode: area, district, sector and two unit letters.
    u = np.arange(units)
    text = join(
        labels(POSTCODE_AREAS, u % len(POSTCODE_AREAS)),
        pa.array(1 + (u // len(POSTCODE_AREAS)) % 30).cast(pa.large_string()),
        " ",
        pa.array((u // 300) % 10).cast(pa.large_string()),
        labels(tuple(UNIT_LETTERS), (u // 3000) % 20),
        labels(tuple(UNIT_LETTERS), (u // 60000 + u * 7) % 20),
    )
    return text, code, moved_at


def nhs_numbers(n: int, seed: int) -> pa.Array:
    """Distinct, valid (modulus 11) ten-digit numbers starting 9: outside the ranges issued to
    patients in England and Wales (400-499 and 600-708 million)."""
    offset = int(np.random.default_rng([seed, IDENTITY_STREAM, 2]).integers(0, 10**8))
    index = np.arange(n, dtype=np.int64)
    out = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    k = 0
    while todo.size:
        # An odd multiplier prime to 10 permutes 0..10^8-1: distinct indices, distinct bases.
        base = 9 * 10**8 + (((index[todo] + k * n) * 7_654_321 + offset) % 10**8)
        check = _check_digits(base)
        ok = check != 10
        out[todo[ok]] = base[ok] * 10 + check[ok]
        todo = todo[~ok]
        k += 1
    return pa.array(out).cast(pa.large_string())


REGION_BLOCK = 10**7
"""NHS-number bases per region of a national world (``regional_nhs_numbers``): ten regions."""


def regional_nhs_numbers(n: int, seed: int, region: int) -> np.ndarray:
    """``n`` distinct valid numbers from region ``region``'s own block of bases (0 to 9).

    Blocks do not overlap, so regions generated apart never share a number; within a block
    the bases are a permutation, and invalid ones are skipped rather than redrawn.
    """
    if not 0 <= region < 10:
        raise ValueError(f"a national world has at most 10 regions, not region {region}")
    offset = int(np.random.default_rng([seed, IDENTITY_STREAM, 3]).integers(0, REGION_BLOCK))
    # About one base in eleven has no valid check digit: draw enough that n remain.
    index = np.arange(min(REGION_BLOCK, n + n // 8 + 64), dtype=np.int64)
    base = 9 * 10**8 + region * REGION_BLOCK + (index * 7_654_321 + offset) % REGION_BLOCK
    check = _check_digits(base)
    valid = np.flatnonzero(check != 10)[:n]
    if valid.size < n:
        raise ValueError(f"{n:,} people do not fit one region's {REGION_BLOCK:,} NHS numbers")
    return np.asarray(base[valid] * 10 + check[valid], dtype=np.int64)


def _check_digits(base: np.ndarray) -> np.ndarray:
    """The modulus-11 check digit of each nine-digit base (10 where none is valid)."""
    digits = (base[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    check: np.ndarray = (11 - (digits @ np.arange(10, 1, -1)) % 11) % 11
    return check


def _noisy_dob(
    dob: np.ndarray, swap: np.ndarray, typo: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Dates of birth with day and month swapped (where possible) or one part wrong."""
    out = dob.copy()
    months = dob.astype("datetime64[M]")
    years = dob.astype("datetime64[Y]")
    day = (dob - months).astype(np.int64) + 1
    month = (months - years).astype(np.int64) + 1
    swappable = swap & (day <= 12) & (day != month)
    out[swappable] = years[swappable] + (day[swappable] - 1).astype("timedelta64[M]")
    out[swappable] = out[swappable].astype("datetime64[M]") + (month[swappable] - 1).astype(
        "timedelta64[D]"
    )
    wrong = typo & ~swappable
    shift = np.where(rng.random(dob.size) < 0.5, 1, -1)
    by_year = rng.random(dob.size) < 0.3
    out[wrong & ~by_year] += shift[wrong & ~by_year].astype("timedelta64[D]")
    year_rows = np.flatnonzero(wrong & by_year)
    out[year_rows] = (years[year_rows] + shift[year_rows].astype("timedelta64[Y]")).astype(
        "datetime64[D]"
    ) + (dob[year_rows] - years[year_rows].astype("datetime64[D]"))
    return out


def identity_tables(
    referrals: pd.DataFrame,
    events: pd.DataFrame,
    persons: pd.DataFrame,
    memberships: pd.DataFrame,
    n_children: int,
    window: tuple[date, date],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pa.Array, pa.Array]:
    """Identity records, their truth, and the record each referral and event was filed under."""
    rng = np.random.default_rng([seed, IDENTITY_STREAM])
    f, anyone = _filings(referrals, events, n_children)
    recs = _records(f, len(persons), rng)
    order = np.lexsort((recs.person, f.t[recs.first_row]))  # record IDs in first-seen order
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    n = order.size
    system, person = recs.system[order], recs.person[order]
    first_row = recs.first_row[order]
    seen = f.t[first_row]
    household = f.household[first_row]
    of_row = rank[recs.of_row]
    n_referrals = f.n_referrals
    del f, recs, rank
    noise = [NOISE[s] for s in SYSTEMS]

    def rate(field: str) -> np.ndarray:
        values: np.ndarray = np.array([getattr(x, field) for x in noise])[system]
        return values

    def draw(field: str, scale: float = 1.0) -> np.ndarray:
        hit: np.ndarray = rng.random(n) < rate(field) * scale
        return hit

    record_ids = prefixed("IDR-", np.arange(n), 8)
    # The system's own person IDs, numbered in the order it first saw them.
    within = np.zeros(n, dtype=np.int64)
    for code in range(len(SYSTEMS)):
        rows = np.flatnonzero(system == code)
        within[rows] = np.arange(rows.size)
    source_ids = join(labels([x.prefix for x in noise], system), prefixed("", within, 7))

    is_child = persons["is_child"].to_numpy()[person]
    true_given = _arrow(persons["given_name"]).take(pa.array(person))
    true_family_all = persons["family_name"].to_numpy(dtype=object)
    born = pa.array(persons["date_of_birth"], type=pa.date32()).to_numpy(zero_copy_only=False)
    born_us = born.astype("datetime64[us]").astype(np.int64)
    change_at, new_family = _surname_changes(
        persons, memberships, n_children, true_family_all, born_us, window, rng
    )
    changed = seen >= change_at[person]
    family = _arrow(persons["family_name"]).take(pa.array(person))
    changed_rows = np.flatnonzero(changed)
    family = _replace(family, changed_rows, new_family[person[changed_rows]].tolist())
    nick, slip, family_slip = draw("nickname"), draw("typo"), draw("typo", 2.0)
    given = _noisy_given(true_given, nick, slip, rng)
    family = _noisy_family(family, family_slip, rng)

    dob_true = born.astype("datetime64[D]")[person]
    age_days = (seen - born_us[person]) / 86_400e6
    newborn = (
        is_child
        & np.isin(system, [SYSTEMS.index("health-records"), SYSTEMS.index("health-referral-hub")])
        & (age_days < NEWBORN_DAYS)
        & (rng.random(n) < 0.5)
    )
    given = _replace(given, np.flatnonzero(newborn), ["Baby"] * int(newborn.sum()))
    dob = _noisy_dob(dob_true, draw("dob_swap"), draw("dob_typo"), rng)
    dob_missing = draw("dob_missing") & ~is_child | (draw("dob_missing", 0.2) & is_child)
    dob_array = pa.array(dob.astype("datetime64[D]"), mask=dob_missing, type=pa.date32())

    postcode_text, postcode_code, moved_at = _postcodes(int(household.max()) + 1, window, seed)
    known_home = household >= 0
    h = np.maximum(household, 0)
    unit = postcode_code[h, (seen >= moved_at[h]).astype(np.int64)]
    postcode_missing = draw("postcode_missing") | ~known_home
    postcode = postcode_text.take(pa.array(unit, mask=postcode_missing))

    nhs_rate = np.where(is_child, rate("nhs_child"), rate("nhs_adult"))
    nhs_missing = rng.random(n) >= nhs_rate
    nhs = nhs_numbers(len(persons), seed).take(pa.array(person, mask=nhs_missing))

    age = age_days / YEAR
    school_age = is_child & (age >= 4) & (age < 16)
    school_known = school_age & draw("school") & known_home
    secondary = age >= 11
    school_number = np.where(secondary, unit // 600, unit // 150)
    school = pc.if_else(
        pa.array(school_known),
        join(
            labels(["Synthetic Primary School ", "Synthetic Secondary School "], secondary),
            prefixed("", school_number, 4),
        ),
        pa.nulls(n, pa.large_string()),
    )

    # Sex as the truth has it: errors are rare (0.11% with date of birth, Harron et al. 2017).
    records = frame(
        {
            "record_id": record_ids,
            "source_system": pa.DictionaryArray.from_arrays(
                pa.array(system.astype(np.int8)), pa.array(SYSTEMS)
            ),
            "source_person_id": source_ids,
            "given_name": given,
            "family_name": family,
            "sex": pc.dictionary_encode(_arrow(persons["sex"])).take(pa.array(person)),
            "postcode": postcode,
            "nhs_number": nhs,
            "school": school,
            "is_child": is_child,
            "first_seen_at": pa.array(seen, type=pa.timestamp("us", tz="UTC")),
        }
    )
    # Compact columns (a 1M-referral world holds about four million records): dates as Arrow
    # date32, the system and sex as categories.
    records.insert(
        5, "date_of_birth", pd.Series(pd.arrays.ArrowExtensionArray(dob_array), index=records.index)
    )
    truth = frame(
        {
            "record_id": record_ids,
            "person_id": _arrow(persons["person_id"]).take(pa.array(person)),
        }
    )
    filed = np.full(anyone.size, -1, dtype=np.int64)
    filed[anyone] = of_row
    subject = record_ids.take(pa.array(np.maximum(filed, 0), mask=filed < 0))
    return records, truth, subject.slice(0, n_referrals), subject.slice(n_referrals)
