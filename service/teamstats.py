"""Team learning: decisions by band and disagreement by reason over time (no targets)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from triage.queue import BANDS
from triage.schema import BandAgreement
from triage.store.statistics import DecisionFact

UNSCORED = "Unscored"
TOP_CODES = 8
AGREEMENTS = tuple(str(a) for a in BandAgreement)


@dataclass(frozen=True)
class BandRow:
    """Decisions made on referrals in one band: how many, and how practitioners saw the band."""

    band: str
    total: int
    by_agreement: dict[str, int]
    by_decision: dict[str, int]

    @property
    def disagreeing(self) -> int:
        """Decisions that said the band should be higher or lower."""
        return self.total - self.by_agreement.get("agree", 0)


@dataclass(frozen=True)
class TeamLearning:
    """What the team decided over a span of weeks, for reflection rather than targets."""

    since: datetime
    weeks: list[date]
    total: int
    by_band: list[BandRow]
    reasons_by_week: dict[str, dict[date, int]]
    """Reason codes cited when disagreeing, counted per week (weeks start on Monday)."""
    direction_by_week: dict[str, dict[date, int]]
    """Disagreements per week by direction (should be higher / lower)."""
    top_codes: list[str]
    """The most cited reason codes (at most ``TOP_CODES``), most cited first."""
    other_codes_by_week: dict[date, int]
    """Citations per week of every code not among ``top_codes``."""


def week_of(moment: datetime) -> date:
    """The Monday of the week ``moment`` falls in."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


def team_learning(
    facts: Sequence[DecisionFact], *, since: datetime, until: datetime
) -> TeamLearning:
    """Aggregate decisions by band and disagreement reasons by week."""
    first = week_of(since)
    weeks = [first + timedelta(weeks=i) for i in range((week_of(until) - first).days // 7 + 1)]
    rows = []
    for band in (*BANDS, UNSCORED):
        mine = [f for f in facts if (f.band or UNSCORED) == band]
        rows.append(
            BandRow(
                band=band,
                total=len(mine),
                by_agreement=dict(Counter(f.agreement for f in mine)),
                by_decision=dict(Counter(f.decision for f in mine)),
            )
        )
    reasons: dict[str, Counter[date]] = {}
    directions: dict[str, Counter[date]] = {a: Counter() for a in AGREEMENTS if a != "agree"}
    for fact in facts:
        if fact.agreement == "agree":
            continue
        week = week_of(fact.decided_at)
        directions.setdefault(fact.agreement, Counter())[week] += 1
        for code in fact.reason_codes or ("(no reason code)",):
            reasons.setdefault(code, Counter())[week] += 1
    ordered = sorted(reasons, key=lambda code: (-sum(reasons[code].values()), code))
    other: Counter[date] = Counter()
    for code in ordered[TOP_CODES:]:
        other.update(reasons[code])
    return TeamLearning(
        since=since,
        weeks=weeks,
        total=len(facts),
        by_band=rows,
        reasons_by_week={code: dict(reasons[code]) for code in ordered},
        direction_by_week={a: dict(c) for a, c in directions.items()},
        top_codes=ordered[:TOP_CODES],
        other_codes_by_week=dict(other),
    )
