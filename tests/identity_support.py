"""A small deterministic stand-in for the linker (``triage.identity``), for service tests.

It follows the linker's contract (``resolve(record, known) -> Resolution``): the same date of
birth (or day and month swapped) and family name, with a given name one typing slip away,
links; the same date of birth, family name and postcode with another given name (twins) is
at most a possible match; nothing else is a candidate.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from triage.identity import LINK_AT, Candidate, Resolution


def _same(a: Any, b: Any) -> str:
    if a is None or b is None or (isinstance(b, float) and pd.isna(b)):
        return "missing"
    if str(a).casefold() == str(b).casefold():
        return "exact"
    if difflib.SequenceMatcher(None, str(a).casefold(), str(b).casefold()).ratio() >= 0.75:
        return "close"
    return "differs"


@dataclass
class FakeResolver:
    """Deterministic linker; ``calls`` counts resolutions, ``fail`` makes it raise."""

    fail: bool = False
    calls: list[int] = field(default_factory=list)

    def resolve(self, record: Mapping[str, Any], known: pd.DataFrame) -> Resolution:
        """Score each known record by the rules in the module docstring."""
        self.calls.append(len(known))
        if self.fail:
            raise RuntimeError("linker down")
        best: dict[str, Candidate] = {}
        for row in known.to_dict("records"):
            evidence = {
                name: _same(record.get(name), row.get(name))
                for name in ("given_name", "family_name", "date_of_birth", "postcode")
            }
            born = record["date_of_birth"]
            if evidence["date_of_birth"] == "differs" and row["date_of_birth"] is not None:
                swapped = (row["date_of_birth"].day, row["date_of_birth"].month)
                if (born.month, born.day) == swapped:
                    evidence["date_of_birth"] = "swapped"
            if evidence["family_name"] != "exact" or evidence["date_of_birth"] == "differs":
                continue
            if evidence["given_name"] in ("exact", "close"):
                probability = 0.99 if evidence["given_name"] == "exact" else 0.97
            elif evidence["postcode"] == "exact":
                probability = 0.6  # twins: same birth, surname and address
            else:
                continue
            candidate = Candidate(str(row["person_id"]), probability, 5.0, evidence)
            kept = best.get(candidate.person_id)
            if kept is None or kept.match_probability < probability:
                best[candidate.person_id] = candidate
        ranked = tuple(sorted(best.values(), key=lambda c: (-c.match_probability, c.person_id))[:5])
        if not ranked:
            return Resolution("new", None, None, ())
        top = ranked[0]
        if top.match_probability >= LINK_AT:
            return Resolution("linked", top.person_id, top.match_probability, ranked)
        return Resolution("possible_match", None, top.match_probability, ranked)
