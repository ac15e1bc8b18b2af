"""Disclosure control of /v1/research/decisions: no withheld cell can be worked out.

The reader may ask for every grouping and knows the band totals (the pseudonymised referrals
give them away). The attack subtracts shown cells from band totals in every table, and, given
the atoms (which combinations of groups exist, more than a real reader knows), solves the
linear system over every table at once: a voice is a set of referrer types and relationships,
so one grouping's shown cell can give away another's withheld one. The same attack on the old
per-table rule (a lone withheld cell in a row or band takes a neighbour) must succeed.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from service.research import (
    AGREEMENT_PARTS,
    GROUPINGS,
    UNSCORED,
    decisions_by_group,
    groups_of,
)
from triage.store.statistics import DecisionFact

K = 10
RECEIVED = datetime(2026, 4, 1, tzinfo=UTC)
PARTS = ("decisions", *AGREEMENT_PARTS)


def _world(spec: list[tuple[str, str | None, str, int, int]]) -> tuple[list[Any], dict[str, Any]]:
    """Facts from (referrer type, relationship, band, decisions, of which should_be_higher)."""
    child = SimpleNamespace(
        date_of_birth=date(2020, 1, 1), sex="female", ethnicity="white", disability=False,
        deprivation_decile=3,
    )  # fmt: skip
    facts, pairs = [], {}
    for kind, relationship, band, count, higher in spec:
        for i in range(count):
            rid = f"R{len(facts)}"
            referral = SimpleNamespace(
                received_at=RECEIVED, referrer_type=kind, referrer_relationship=relationship
            )
            pairs[rid] = (referral, child)
            agreement = "should_be_higher" if i < higher else "agree"
            facts.append(DecisionFact(rid, RECEIVED, "assessment", agreement, (), band))
    return facts, pairs


# Elevated: a police count of 3 (professional with health), anonymous 12 (alone in its voice),
# a relative 30. Standard: everything large.
LEAKY = [
    ("police", None, "Elevated", 3, 0),
    ("health", "gp", "Elevated", 40, 12),
    ("anonymous", None, "Elevated", 12, 0),
    ("individual", "relative", "Elevated", 30, 0),
    ("police", None, "Standard", 50, 10),
    ("health", "gp", "Standard", 50, 10),
    ("anonymous", None, "Standard", 30, 0),
    ("individual", "relative", "Standard", 50, 20),
]


def _old_rule(cells: dict[tuple[str, str], Counter[str]]) -> set[tuple[str, str]]:
    """The endpoint's old per-table suppression, kept here to show the attack has teeth."""
    hidden = {
        key
        for key, counts in cells.items()
        if counts["decisions"] < K or any(0 < counts[part] < K for part in AGREEMENT_PARTS)
    }
    changed = True
    while changed:
        changed = False
        for axis in (0, 1):
            lines: dict[str, list[tuple[str, str]]] = {}
            for key in cells:
                lines.setdefault(key[axis], []).append(key)
            for keys in lines.values():
                shown = [k for k in keys if k not in hidden]
                if len(keys) - len(shown) == 1 and shown:
                    hidden.add(min(shown, key=lambda k: (cells[k]["decisions"], k)))
                    changed = True
    return hidden


def _old_tables(facts: list[Any], pairs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every grouping's table as the old rule published it."""
    groups = groups_of([pairs[f.referral_id] for f in facts])
    tables = {}
    for by in GROUPINGS:
        cells: dict[tuple[str, str], Counter[str]] = {}
        for i, fact in enumerate(facts):
            cell = cells.setdefault((str(groups[by].iat[i]), fact.band or UNSCORED), Counter())
            cell["decisions"] += 1
            cell[fact.agreement] += 1
        hidden = _old_rule(cells)
        tables[by] = [
            {"group": g, "band": b, "suppressed": (g, b) in hidden}
            | {p: None if (g, b) in hidden else c[p] for p in PARTS}
            for (g, b), c in cells.items()
        ]
    return tables


def _attack(
    facts: list[Any], pairs: dict[str, Any], tables: dict[str, list[dict[str, Any]]]
) -> list[tuple[str, str, str, str]]:
    """Withheld cells whose counts the reader works out, or small sums a band total gives away."""
    groups = groups_of([pairs[f.referral_id] for f in facts])[list(GROUPINGS)].astype(str)
    groups["band"] = [f.band or UNSCORED for f in facts]
    values = np.array([[1.0, *(f.agreement == part for part in AGREEMENT_PARTS)] for f in facts])
    atoms = groups.drop_duplicates().to_numpy()
    columns = list(groups.columns)

    def vector(by: str, group: str, band: str) -> np.ndarray:
        j = columns.index(by)
        return ((atoms[:, j] == group) & (atoms[:, -1] == band)).astype(float)

    bands = sorted(set(groups["band"]))
    band_total = {b: values[groups["band"].to_numpy() == b].sum(axis=0) for b in bands}
    known = [(atoms[:, -1] == b).astype(float) for b in bands]
    found = []
    for by, rows in tables.items():
        for band in bands:
            shown = [r for r in rows if r["band"] == band and not r["suppressed"]]
            hidden = [r for r in rows if r["band"] == band and r["suppressed"]]
            rest = band_total[band] - np.array([[r[p] for p in PARTS] for r in shown]).reshape(
                -1, len(PARTS)
            ).sum(axis=0)
            if shown and hidden and np.any((rest > 0) & (rest < K)):
                found.append(("subtraction", by, "+".join(r["group"] for r in hidden), band))
        known += [vector(by, r["group"], r["band"]) for r in rows if not r["suppressed"]]

    def solves(vectors: list[np.ndarray], target: np.ndarray) -> bool:
        _, s, vt = np.linalg.svd(np.array(vectors), full_matrices=False)
        span = vt[: int((s > 1e-9 * s[0]).sum())]
        residual = target - (target @ span.T) @ span
        return bool(np.linalg.norm(residual) < 1e-7 * np.linalg.norm(target))

    public = known[: len(bands)]
    for by, rows in tables.items():
        for r in rows:
            target = vector(by, r["group"], r["band"])
            # A grouping's only cell in a band is the band total: known before the endpoint.
            if r["suppressed"] and not solves(public, target) and solves(known, target):
                found.append(("solved", by, r["group"], r["band"]))
    return found


def _tables(facts: list[Any], pairs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {by: decisions_by_group(facts, pairs, by=by, min_count=K) for by in GROUPINGS}


def test_the_attack_recovers_cells_from_the_old_per_table_rule() -> None:
    facts, pairs = _world(LEAKY)
    found = _attack(facts, pairs, _old_tables(facts, pairs))
    # The anonymous voice shows what the referrer-type table withheld, and then the band
    # total gives the police count of 3 away.
    assert ("solved", "referrer_type", "police", "Elevated") in found
    assert ("solved", "referrer_type", "anonymous", "Elevated") in found


def test_no_withheld_cell_of_any_grouping_can_be_worked_out() -> None:
    facts, pairs = _world(LEAKY)
    tables = _tables(facts, pairs)
    assert _attack(facts, pairs, tables) == []
    police = next(
        r for r in tables["referrer_type"] if (r["group"], r["band"]) == ("police", "Elevated")
    )
    assert police["suppressed"] and police["decisions"] is None
    # Withheld means every number: no part of a withheld cell is left.
    for rows in tables.values():
        for row in rows:
            if row["suppressed"]:
                assert all(row[p] is None for p in PARTS)
            else:
                assert all(row[p] == 0 or row[p] >= K for p in PARTS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_worlds_leak_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    referrers = [("police", None), ("health", "gp"), ("school", None), ("anonymous", None),
                 ("individual", "relative"), ("individual", "parent"),
                 ("individual", "neighbour")]  # fmt: skip
    spec = []
    for kind, relationship in referrers:
        for band in ("Review first", "Elevated", "Standard", "Lower"):
            count = int(rng.choice([0, 3, 12, 25, 60, 120, 200]))
            spec.append((kind, relationship, band, count, int(rng.choice([0, count // 2]))))
    facts, pairs = _world(spec)
    tables = _tables(facts, pairs)
    assert any(r["suppressed"] for rows in tables.values() for r in rows)
    # Voices nest in referrer types and relationships, so their tables share the withholding;
    # groupings that cut across them keep their cells.
    assert all(not r["suppressed"] for r in tables["sex"])
    assert _attack(facts, pairs, tables) == []


def test_nothing_is_withheld_without_need() -> None:
    facts, pairs = _world([("police", None, "Lower", 30, 0), ("health", "gp", "Lower", 30, 10)])
    tables = _tables(facts, pairs)
    assert not any(r["suppressed"] for rows in tables.values() for r in rows)
    # One small part (3 of 30 disagreeing) withholds its cell and, in its band, a neighbour.
    facts, pairs = _world([("police", None, "Lower", 30, 3), ("health", "gp", "Lower", 30, 0)])
    rows = decisions_by_group(facts, pairs, by="referrer_type", min_count=K)
    assert all(r["suppressed"] for r in rows)
    frame = pd.DataFrame(rows)
    assert frame["decisions"].isna().all()
