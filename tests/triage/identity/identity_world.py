"""A small test-only generator of noisy identity records (the contract's columns) with truth.

Households share a family name and a postcode; some have twins (same date of birth, family
name and postcode, different given names). Each person is held by one to four agencies, some
twice by the same agency, with typos, nicknames, surname changes, day/month swaps, moves and
missing NHS numbers. The real world's generator is ``triage.synth``'s; this one only has to
exercise the linker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from triage.identity.names import VARIANT_GROUPS

SOURCES = ("police", "health", "school", "housing", "social_care")
GIVEN_FEMALE = (
    "Olivia",
    "Amelia",
    "Isabella",
    "Sophie",
    "Charlotte",
    "Emily",
    "Grace",
    "Lucy",
    "Jessica",
    "Elizabeth",
    "Margaret",
    "Victoria",
    "Rebecca",
    "Abigail",
    "Samantha",
    "Zoe",
    "Leah",
    "Natalie",
    "Eleanor",
    "Catherine",
    "Ava",
    "Freya",
    "Ruby",
    "Maryam",
    "Aisha",
    "Priya",
    "Ananya",
    "Chioma",
    "Ngozi",
    "Wanjiru",
    "Zeynep",
    "Elif",
    "Aoife",
    "Siobhan",
    "Zuzanna",
    "Maja",
    "Ella",
    "Poppy",
    "Evie",
    "Isla",
    "Layla",
    "Fatima",
    "Hannah",
    "Anna",
    "Megan",
    "Chloe",
    "Holly",
    "Imogen",
    "Jasmine",
    "Phoebe",
)
GIVEN_MALE = (
    "Oliver",
    "Jack",
    "Harry",
    "Jacob",
    "Charles",
    "Thomas",
    "George",
    "James",
    "William",
    "Samuel",
    "Joseph",
    "Daniel",
    "Michael",
    "Robert",
    "Alexander",
    "Benjamin",
    "Edward",
    "Henry",
    "Matthew",
    "Nicholas",
    "Mohammed",
    "Arjun",
    "Rohan",
    "Imran",
    "Bilal",
    "Chinedu",
    "Emeka",
    "Kofi",
    "Otieno",
    "Kamau",
    "Mehmet",
    "Emre",
    "Cian",
    "Oisin",
    "Jakub",
    "Kacper",
    "Noah",
    "Leo",
    "Arthur",
    "Freddie",
    "Theo",
    "Oscar",
    "Archie",
    "Logan",
    "Ethan",
    "Lewis",
    "Ryan",
    "Dylan",
    "Tyler",
    "Kai",
)
FAMILY = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Ahmed",
    "Hussain",
    "Ali",
    "Singh",
    "Begum",
    "Okafor",
    "Adeyemi",
    "Okonkwo",
    "Mwangi",
    "Odhiambo",
    "Yilmaz",
    "Demir",
    "Kaya",
    "Murphy",
    "Kelly",
    "O'Brien",
    "Byrne",
    "Nowak",
    "Kowalski",
    "Wisniewski",
    "Lewandowski",
    "Shah",
    "Hughes",
    "Edwards",
    "Turner",
    "Hill",
    "Moore",
    "Cooper",
    "Ward",
    "Morris",
    "King",
    "Baker",
    "Harris",
    "Lee",
    "Martin",
    "Clark",
    "Young",
    "Allen",
    "Mitchell",
    "Phillips",
    "Campbell",
    "Parker",
    "Bennett",
    "Cook",
    "Bailey",
    "Bell",
    "Collins",
    "Stewart",
    "Murray",
    "Price",
    "Reid",
    "Kennedy",
    "Quinn",
    "Foster",
    "Barnes",
    "Palmer",
    "Lloyd",
    "Mason",
)
AREAS = ("ZA", "ZB", "ZC", "ZD", "ZE", "ZF", "ZG", "ZH")
SCHOOLS = tuple(f"URN-{100000 + i}" for i in range(60))
_ONSETS = ("b", "d", "k", "l", "m", "n", "r", "s", "t", "v", "z", "br", "st", "gr", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "n", "r", "l", "s", "th", "nd", "rk", "ll", "ton", "by", "wood", "ley")


def _invented(n: int, rng: np.random.Generator) -> tuple[str, ...]:
    """``n`` distinct invented names (two or three syllables), so large worlds are not all
    namesakes: a few dozen real names over a million records would put thousands in a block."""
    names: set[str] = set()
    while len(names) < n:
        parts = [
            _ONSETS[int(rng.integers(len(_ONSETS)))] + _VOWELS[int(rng.integers(len(_VOWELS)))]
            for _ in range(int(rng.integers(2, 4)))
        ]
        names.add(("".join(parts) + _CODAS[int(rng.integers(len(_CODAS)))]).capitalize())
    return tuple(sorted(names))


# Words that log lines start with are left out (alembic logs "Will assume transactional DDL"),
# or the tests' personal-data log scan would take the log line for a name.
_LOG_WORDS = frozenset({"will"})
_NICKNAMES: dict[str, list[str]] = {}
for _group, _names in VARIANT_GROUPS.items():
    for _name in _names[1:]:
        if _name not in _LOG_WORDS:
            _NICKNAMES.setdefault(_group, []).append(_name.capitalize())


@dataclass(frozen=True)
class IdentityWorld:
    """Identity records (the contract's columns) and their truth (record_id, person_id)."""

    records: pd.DataFrame
    truth: pd.DataFrame


def _postcode(rng: np.random.Generator) -> str:
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    area = AREAS[rng.integers(len(AREAS))]
    return (
        f"{area}{rng.integers(1, 30)} {rng.integers(1, 10)}"
        f"{letters[rng.integers(len(letters))]}{letters[rng.integers(len(letters))]}"
    )


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 3:
        return word + "e"
    i = int(rng.integers(1, len(word)))
    kind = rng.integers(4)
    if kind == 0:  # drop a letter
        return word[:i] + word[i + 1 :]
    if kind == 1:  # double a letter
        return word[:i] + word[i] + word[i:]
    if kind == 2 and i < len(word) - 1:  # swap neighbours
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + "aeiou"[int(rng.integers(5))] + word[i + 1 :]


def _nickname(given: str, rng: np.random.Generator) -> str:
    options = _NICKNAMES.get(given.lower())
    return given if not options else options[int(rng.integers(len(options)))]


def _nhs(rng: np.random.Generator) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, 10))


def make_world(n_households: int = 600, seed: int = 0, twin_share: float = 0.06) -> IdentityWorld:
    """A synthetic world of ``n_households`` households and their agencies' identity records."""
    rng = np.random.default_rng(seed)
    extra = _invented(max(0, n_households // 20), np.random.default_rng(10_000 + seed))
    family_pool = FAMILY + extra
    female = GIVEN_FEMALE + extra[: len(extra) // 2]
    male = GIVEN_MALE + extra[len(extra) // 2 :]
    people: list[dict[str, object]] = []
    for h in range(n_households):
        family = family_pool[int(rng.integers(len(family_pool)))]
        postcode = _postcode(rng)
        n_adults = int(rng.integers(1, 3))
        n_children = int(rng.integers(1, 4))
        members: list[tuple[bool, date]] = []
        for _ in range(n_adults):
            members.append((False, date(1965, 1, 1) + timedelta(days=int(rng.integers(0, 12000)))))
        for _ in range(n_children):
            members.append((True, date(2008, 1, 1) + timedelta(days=int(rng.integers(0, 6500)))))
        if rng.random() < twin_share:  # twins: the last child's birth date again
            members.append((True, members[-1][1]))
        used: set[str] = set()
        for k, (is_child, dob) in enumerate(members):
            is_male = bool(rng.random() < 0.5)
            pool = male if is_male else female
            given = pool[int(rng.integers(len(pool)))]
            while given in used:
                given = pool[int(rng.integers(len(pool)))]
            used.add(given)
            people.append(
                {
                    "person_id": f"P-{h:05d}-{k}",
                    "given_name": given,
                    "family_name": family,
                    "date_of_birth": dob,
                    "sex": "male" if is_male else "female",
                    "postcode": postcode,
                    "nhs_number": _nhs(rng),
                    "school": SCHOOLS[int(rng.integers(len(SCHOOLS)))] if is_child else None,
                    "is_child": is_child,
                }
            )
    rows: list[dict[str, object]] = []
    seen = datetime(2020, 1, 1, tzinfo=UTC)
    for person in people:
        n_records = int(rng.choice([1, 2, 2, 3, 3, 4]))
        systems = list(rng.choice(SOURCES, size=n_records, replace=False))
        if rng.random() < 0.08:  # a duplicate within one agency
            systems.append(systems[0])
        for system in systems:
            rows.append(_noisy_record(person, str(system), rng, seen, len(rows)))
    records = pd.DataFrame(rows)
    truth = records[["record_id", "person_id"]].copy()
    records = records.drop(columns="person_id")
    records["date_of_birth"] = pd.to_datetime(records["date_of_birth"]).dt.date
    return IdentityWorld(records=records, truth=truth)


def _noisy_record(
    person: dict[str, object],
    system: str,
    rng: np.random.Generator,
    seen: datetime,
    index: int,
) -> dict[str, object]:
    given = str(person["given_name"])
    family = str(person["family_name"])
    dob = person["date_of_birth"]
    assert isinstance(dob, date)
    roll = rng.random(12)
    if roll[0] < 0.10:
        given = _nickname(given, rng)
    if roll[1] < 0.08:
        given = _typo(given, rng)
    if roll[2] < 0.04:
        family = FAMILY[int(rng.integers(len(FAMILY)))]  # a surname change (to a common one)
    elif roll[3] < 0.06:
        family = _typo(family, rng)
    out_dob: date | None = dob
    if roll[4] < 0.03 and dob.day <= 12 and dob.day != dob.month:
        out_dob = date(dob.year, dob.day, dob.month)
    elif roll[5] < 0.04:
        out_dob = dob.replace(day=min(28, max(1, dob.day + int(rng.choice([-1, 1, 10])))))
    postcode: str | None = str(person["postcode"])
    if roll[6] < 0.12:
        postcode = _postcode(rng)  # the household moved
    elif roll[7] < 0.04:
        postcode = None
    nhs = person["nhs_number"] if rng.random() < (0.9 if system == "health" else 0.3) else None
    school = person["school"] if system in ("school", "social_care") else None
    sex = "unknown" if roll[8] < 0.02 else person["sex"]
    return {
        "record_id": f"IDR-{index + 1:08d}",
        "source_system": system,
        "source_person_id": f"{system[:3].upper()}-{int(rng.integers(10**9)):09d}",
        "given_name": None if roll[9] < 0.01 else given,
        "family_name": family,
        "date_of_birth": None if roll[10] < 0.01 else out_dob,
        "sex": sex,
        "postcode": postcode,
        "nhs_number": nhs,
        "school": school,
        "is_child": person["is_child"],
        "first_seen_at": seen + timedelta(days=int(rng.integers(0, 2000))),
        "person_id": person["person_id"],
    }
