"""The manager's panels: backlog and timeliness, agreement in both modes, overrides against later
outcomes, and de-identified rationales behind disagreements. Figures for reflection, never
targets; a share of fewer than ``SMALL_COUNT`` decisions is shown as a count with a caution."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from statistics import median

from service.deidentify import deidentify
from service.teamstats import UNSCORED, week_of
from triage.queue import BANDS, due_by
from triage.store.team_facts import DecisionRecord, OpenItem
from triage.vocab import OutcomeLevel

SMALL_COUNT = 20
"""Below this many decisions a share is not shown as a percentage (too few to compare)."""
MAX_RATIONALES = 20
INVESTIGATED = frozenset(
    {OutcomeLevel.s47_enquiry, OutcomeLevel.initial_conference, OutcomeLevel.cp_plan}
)
DIRECTIONS = ("should_be_higher", "agree", "should_be_lower")


@dataclass(frozen=True)
class Share:
    """``part`` of ``whole``; ``percent`` only when ``whole`` is at least ``SMALL_COUNT``."""

    part: int
    whole: int

    @property
    def small(self) -> bool:
        """Too few to read as a pattern."""
        return self.whole < SMALL_COUNT

    @property
    def percent(self) -> int | None:
        """The share as a whole percentage, or None when the number is small."""
        return None if self.small or not self.whole else round(100 * self.part / self.whole)


@dataclass(frozen=True)
class BacklogRow:
    """Open referrals in one band: how many, how many overdue, the longest wait in hours."""

    band: str
    open: int
    overdue: int
    oldest_hours: float | None


@dataclass(frozen=True)
class TimelinessRow:
    """Decisions on referrals in one band: how many were made by their due time, median hours."""

    band: str
    on_time: Share
    median_hours: float | None


@dataclass(frozen=True)
class AgreementRow:
    """Decisions made in one way of working (judge first or band shown), by agreement."""

    mode: str
    total: int
    by_agreement: dict[str, int]
    agreeing: Share


@dataclass(frozen=True)
class OutcomeRow:
    """Decisions in one direction against the band, and what later happened to those referrals."""

    direction: str
    total: int
    with_outcome: int
    investigated: Share
    significant_harm: Share


@dataclass(frozen=True)
class Rationale:
    """A rationale behind a disagreement, de-identified, with only coarse context."""

    week: date
    band: str
    priority: str | None
    direction: str
    decision: str
    text: str


def backlog(items: Sequence[OpenItem], *, now: datetime) -> list[BacklogRow]:
    """Open referrals per band (and unscored), with the overdue and the longest wait."""
    rows = []
    for band in (*BANDS, UNSCORED):
        mine = [i for i in items if (i.band or UNSCORED) == band]
        waits = [(now - i.received_at).total_seconds() / 3600 for i in mine]
        rows.append(
            BacklogRow(
                band=band,
                open=len(mine),
                overdue=sum(1 for i in mine if due_by(i.received_at) < now),
                oldest_hours=max(waits) if waits else None,
            )
        )
    return rows


def timeliness(records: Sequence[DecisionRecord]) -> list[TimelinessRow]:
    """Per band, and for all: decisions made by their due time, and the median hours taken."""
    rows = []
    for band in (*BANDS, UNSCORED, "All"):
        mine = [r for r in records if band == "All" or (r.band or UNSCORED) == band]
        hours = [(r.decided_at - r.received_at).total_seconds() / 3600 for r in mine]
        on_time = sum(1 for r in mine if r.decided_at <= due_by(r.received_at))
        rows.append(
            TimelinessRow(
                band=band,
                on_time=Share(on_time, len(mine)),
                median_hours=median(hours) if hours else None,
            )
        )
    return rows


def agreement_by_mode(records: Sequence[DecisionRecord]) -> list[AgreementRow]:
    """Agreement with the band when the priority came before the band, and when it came after."""
    modes = {
        "judge_first": [r for r in records if r.band and r.priority_before_band],
        "band_shown": [r for r in records if r.band and r.priority and not r.priority_before_band],
        "agreement_only": [r for r in records if r.band and r.agreement and not r.priority],
    }
    rows = []
    for mode, mine in modes.items():
        counts = Counter(r.agreement for r in mine if r.agreement)
        rows.append(
            AgreementRow(
                mode=mode,
                total=len(mine),
                by_agreement={d: counts.get(d, 0) for d in DIRECTIONS},
                agreeing=Share(counts.get("agree", 0), len(mine)),
            )
        )
    return rows


def overrides_against_outcomes(records: Sequence[DecisionRecord]) -> list[OutcomeRow]:
    """For each direction against the band: how often the referral was later investigated
    (section 47 or beyond) or the child significantly harmed, among those with an outcome."""
    rows = []
    for direction in DIRECTIONS:
        mine = [r for r in records if r.agreement == direction]
        known = [r for r in mine if r.outcome_level is not None]
        rows.append(
            OutcomeRow(
                direction=direction,
                total=len(mine),
                with_outcome=len(known),
                investigated=Share(
                    sum(1 for r in known if r.outcome_level in INVESTIGATED), len(known)
                ),
                significant_harm=Share(sum(1 for r in known if r.significant_harm), len(known)),
            )
        )
    return rows


def disagreement_rationales(
    records: Sequence[DecisionRecord], *, names: dict[str, set[str]]
) -> list[Rationale]:
    """The newest rationales behind disagreements, with names, ids, dates and contacts removed."""
    found = []
    for record in reversed(records):
        if record.agreement in (None, "agree") or not record.rationale:
            continue
        found.append(
            Rationale(
                week=week_of(record.decided_at),
                band=record.band or UNSCORED,
                priority=record.priority,
                direction=record.agreement or "",
                decision=record.decision,
                text=deidentify(record.rationale, names=names.get(record.child_id, set())),
            )
        )
        if len(found) == MAX_RATIONALES:
            break
    return found
