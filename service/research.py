"""What researchers may see: pseudonymised referrals and human decisions by group, suppressed."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import SIGNALS
from models.dataset import NO_RELATIONSHIP, age_band
from models.fairness import ATTRIBUTES, deprivation_band, withhold_crossed
from triage.pseudonyms import pseudonym
from triage.queue import BANDS, age_in_months
from triage.store.statistics import DecisionFact, ReferralRecord
from triage.store.tables import ChildRow, ReferralRow
from triage.vocab import GENERAL_REASON_CODES, PRACTICE_REASON_CODES, referrer_voice

GROUPINGS = ATTRIBUTES
"""The fairness audit's groupings: protected attributes, age band and whose voice referred."""
UNSCORED = "Unscored"
OTHER_CODE = "other"
AGREEMENT_PARTS = ("agree", "should_be_higher", "should_be_lower")
QUARTER = re.compile(r"^(20\d\d)-Q([1-4])$")


def known_reason_code(code: str) -> str:
    """A reason code from the closed set (signals and general codes), else ``other``.

    The API accepts any snake_case code, so a code could carry words about a family.
    """
    known = code in SIGNALS or code in GENERAL_REASON_CODES or code in PRACTICE_REASON_CODES
    return code if known else OTHER_CODE


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    """``2026-Q2`` as [1 Apr 2026, 1 Jul 2026) in UTC."""
    match = QUARTER.match(quarter)
    if match is None:
        raise ValueError(f"not a quarter such as 2026-Q2: {quarter!r}")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, 3 * number - 2, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if number == 4
        else start.replace(month=start.month + 3)
    )
    return start, end


def quarter_of(moment: datetime) -> str:
    """The calendar quarter ``moment`` falls in, e.g. ``2026-Q4``."""
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def groups_of(pairs: Sequence[tuple[ReferralRow, ChildRow]]) -> pd.DataFrame:
    """Audit groups of each referral: its child at receipt (the audit's bands) and its referrer."""
    months = [
        age_in_months(child.date_of_birth, referral.received_at.date()) for referral, child in pairs
    ]
    frame = pd.DataFrame(
        {
            "age_months": pd.Series(months, dtype="float64"),
            "sex": [child.sex for _, child in pairs],
            "ethnicity": [child.ethnicity for _, child in pairs],
            "disability": [str(bool(child.disability)).lower() for _, child in pairs],
            "deprivation_decile": [child.deprivation_decile for _, child in pairs],
            "referrer_type": [referral.referrer_type for referral, _ in pairs],
            "referrer_relationship": [
                referral.referrer_relationship or NO_RELATIONSHIP for referral, _ in pairs
            ],
            "referrer_voice": [
                referrer_voice(referral.referrer_type, referral.referrer_relationship)
                for referral, _ in pairs
            ],
        }
    )
    bands = age_band(frame["age_months"]) if len(frame) else pd.Series(dtype=object)
    # The audit's bands stop at 0 and 18 years; intake accepts unborn children and over-18s.
    bands = bands.where(frame["age_months"] >= 0, "before birth")
    bands = bands.where(frame["age_months"] < 18 * 12, "18 or over")
    frame["age_band"] = bands
    frame["deprivation_band"] = (
        deprivation_band(frame["deprivation_decile"]) if len(frame) else pd.Series(dtype=object)
    )
    return frame


def research_referrals(records: Sequence[ReferralRecord], *, key: bytes) -> list[dict[str, Any]]:
    """Pseudonymised referrals: no names, dates, narratives, rationales, raw ids or groups."""
    out = []
    for record in records:
        referral, score, decision = record.referral, record.score, record.decision
        out.append(
            {
                "referral": pseudonym(key, "referral", referral.referral_id),
                "child": pseudonym(key, "child", referral.child_id),
                "household": pseudonym(key, "household", referral.household_id),
                "received_month": f"{referral.received_at:%Y-%m}",
                "referrer_type": referral.referrer_type,
                "concerns": list(referral.concerns),
                "injury_reported": referral.injury_reported,
                "status": referral.status,
                "band": score.band if score is not None else None,
                "probability": round(score.probability, 3) if score is not None else None,
                "model_version": score.model_version if score is not None else None,
                "safety_flagged": bool(score.flags) if score is not None else False,
                "decision": decision.decision if decision is not None else None,
                "agreement": decision.agreement if decision is not None else None,
                "reason_codes": sorted(
                    {known_reason_code(c) for c in decision.reason_codes}
                    if decision is not None
                    else set()
                ),
            }
        )
    return out


def decisions_by_group(
    facts: Sequence[DecisionFact],
    pairs: dict[str, tuple[ReferralRow, ChildRow]],
    *,
    by: str,
    min_count: int,
) -> list[dict[str, Any]]:
    """Decisions per group and band with agreement counts; withheld cells lose every number.

    Disclosure control is the fairness audit's (``withhold_crossed``), over every grouping at
    once, so that the answers for two groupings cannot be combined to recover a cell.
    """
    known = [f for f in facts if f.referral_id in pairs]
    groups = groups_of([pairs[f.referral_id] for f in known])
    cells: dict[tuple[str, str], Counter[str]] = {}
    for i, fact in enumerate(known):
        cell = cells.setdefault((str(groups[by].iat[i]), fact.band or UNSCORED), Counter())
        cell["decisions"] += 1
        cell[fact.agreement] += 1
    hidden = withheld_cells(known, groups, min_count=min_count)[by]
    order = {band: n for n, band in enumerate((*BANDS, UNSCORED))}
    rows = []
    for (group, band), counts in sorted(cells.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        suppressed = (group, band) in hidden
        row: dict[str, Any] = {"group": group, "band": band, "suppressed": suppressed}
        for name in ("decisions", *AGREEMENT_PARTS):
            row[name] = None if suppressed else counts[name]
        rows.append(row)
    return rows


def withheld_cells(
    facts: Sequence[DecisionFact], groups: pd.DataFrame, *, min_count: int
) -> dict[str, set[tuple[str, str]]]:
    """Per grouping, the (group, band) cells to withhold: primary and secondary suppression.

    A cell is withheld when its decisions, or any of its agreement counts (so any complement
    too), are from 1 to ``min_count - 1``; then further cells, over every grouping together,
    until no withheld cell can be worked out from the shown ones and the band totals (which
    the pseudonymised referrals give away), and no band total minus its shown cells is from 1
    to ``min_count - 1``. ``groups`` is ``groups_of`` the facts' referrals, row for row.
    """
    frame = groups[list(GROUPINGS)].astype(str).copy()
    frame["band"] = [fact.band or UNSCORED for fact in facts]
    parts = np.array(
        [[1, *(fact.agreement == part for part in AGREEMENT_PARTS)] for fact in facts],
        dtype=float,
    ).reshape(len(facts), 1 + len(AGREEMENT_PARTS))
    return withhold_crossed(frame, "band", parts, min_count=min_count)
