"""What researchers may see: pseudonymised referrals and human decisions by group, suppressed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

from models.dataset import age_band
from models.fairness import deprivation_band
from triage.pseudonyms import pseudonym
from triage.queue import BANDS, age_in_months
from triage.store.statistics import DecisionFact, ReferralRecord
from triage.store.tables import ChildRow, ReferralRow

GROUPINGS = ("ethnicity", "sex", "disability", "deprivation_band", "age_band")
UNSCORED = "Unscored"


def groups_of(pairs: Sequence[tuple[ReferralRow, ChildRow]]) -> pd.DataFrame:
    """Audit groups of each referral's child at receipt (the fairness audit's bands)."""
    frame = pd.DataFrame(
        {
            "age_months": [
                age_in_months(child.date_of_birth, referral.received_at.date())
                for referral, child in pairs
            ],
            "sex": [child.sex for _, child in pairs],
            "ethnicity": [child.ethnicity for _, child in pairs],
            "disability": [bool(child.disability) for _, child in pairs],
            "deprivation_decile": [child.deprivation_decile for _, child in pairs],
        }
    )
    frame["age_band"] = age_band(frame["age_months"]) if len(frame) else []
    frame["deprivation_band"] = deprivation_band(frame["deprivation_decile"]) if len(frame) else []
    return frame


def research_referrals(records: Sequence[ReferralRecord], *, key: bytes) -> list[dict[str, Any]]:
    """Pseudonymised referrals: no names, dates of birth, narratives, rationales or raw ids."""
    groups = groups_of([(r.referral, r.child) for r in records])
    out = []
    for i, record in enumerate(records):
        referral, score, decision = record.referral, record.score, record.decision
        out.append(
            {
                "referral": pseudonym(key, "referral", referral.referral_id),
                "child": pseudonym(key, "child", referral.child_id),
                "household": pseudonym(key, "household", referral.household_id),
                "received_month": f"{referral.received_at:%Y-%m}",
                "age_band": groups["age_band"].iat[i],
                "sex": groups["sex"].iat[i],
                "ethnicity": groups["ethnicity"].iat[i],
                "disability": bool(groups["disability"].iat[i]),
                "deprivation_band": groups["deprivation_band"].iat[i],
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
                "reason_codes": list(decision.reason_codes) if decision is not None else [],
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
    """Decisions per group and band with agreement counts; small cells lose every number."""
    known = [f for f in facts if f.referral_id in pairs]
    groups = groups_of([pairs[f.referral_id] for f in known])
    cells: dict[tuple[str, str], Counter[str]] = {}
    for i, fact in enumerate(known):
        group = str(groups[by].iat[i])
        cell = cells.setdefault((group, fact.band or UNSCORED), Counter())
        cell["decisions"] += 1
        cell[fact.agreement] += 1
    order = {band: n for n, band in enumerate((*BANDS, UNSCORED))}
    rows = []
    for (group, band), counts in sorted(cells.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        # A cell with any small count is suppressed whole: its total and its parts are all
        # counts of people, and a total minus the other parts would give the small one away.
        parts = [counts[a] for a in ("agree", "should_be_higher", "should_be_lower")]
        suppressed = counts["decisions"] < min_count or any(0 < n < min_count for n in parts)
        rows.append(
            {
                "group": group,
                "band": band,
                "suppressed": suppressed,
                "decisions": None if suppressed else counts["decisions"],
                "agree": None if suppressed else counts["agree"],
                "should_be_higher": None if suppressed else counts["should_be_higher"],
                "should_be_lower": None if suppressed else counts["should_be_lower"],
            }
        )
    return rows
