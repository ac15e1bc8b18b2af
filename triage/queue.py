"""The review queue's rules: transparent safety rules, band order, queue tiers and due-by.

Everything here is pure (no store, no model) so the rules can be read, tested and audited on
their own. A safety rule looks at the referral itself (the child's age, what is reported, who
reported it) and, where it says so, at the child's history as the catalogue's signals count it
(earlier referrals, closures with no further action, distinct referrers). It never looks at
the model: it still applies when no model is loaded.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from triage.vocab import RELATIVE_OR_FRIEND

BANDS: tuple[str, ...] = ("Review first", "Elevated", "Standard", "Lower")
"""Band names, highest priority first (the same names ``models.bands`` assigns)."""
REVIEW_FIRST = BANDS[0]

WORKING_DAYS_TO_DECIDE = 1
"""A referral is due one working day after receipt (weekends skipped; no bank holidays yet)."""

# Queue tiers, in order. Within a tier: the earliest look-by time first (see BAND_LOOK_HOURS),
# then probability high to low. Every scored referral without a safety flag shares one tier:
# its band sets its look-by time, so waiting lifts it above later arrivals of any band.
TIER_SAFETY_UNSCORED = 0
TIER_SAFETY = 1
TIER_UNSCORED = 2
TIER_SCORED = 3
TIER_FIRST_BAND = TIER_SCORED
"""Kept for cursors and older callers: the first tier a scored referral can have."""

BAND_LOOK_HOURS: dict[str, float] = {
    "Review first": 0.0,
    "Elevated": 8.0,
    "Standard": 16.0,
    "Lower": 24.0,
}
"""Hours after receipt by which a referral in each band should have been looked at.

The queue is ordered by this look-by time, earliest first (earliest deadline first). A
referral can therefore be overtaken only by referrals that arrived less than 24 hours after
it: once a Lower referral is a day old, which is never later than its decision is due, every
referral that arrives after that, of any band, ranks below it. No band waits indefinitely,
and among referrals that arrive together the higher band still comes first.
"""
LOOK_HOURS_UNKNOWN_BAND = max(BAND_LOOK_HOURS.values())


@dataclass(frozen=True)
class ReferralFacts:
    """What the safety rules may look at: the referral as reported and its counted history."""

    age_months: int
    injury_reported: bool
    injury_sites: frozenset[str] = frozenset()
    concerns: frozenset[str] = frozenset()
    referrer_relationship: str | None = None
    injury_photographed: bool = False
    history: Mapping[str, float] | None = None
    """The catalogue's signal values for this referral (records strictly before it); None
    when the history was not read, and then no rule that reads history applies."""


@dataclass(frozen=True)
class SafetyRule:
    """A declarative rule: when every stated condition holds, the band is forced up."""

    code: str
    words: str
    """What a practitioner reads beside the referral."""
    forces_band: str = REVIEW_FIRST
    under_age_months: int | None = None
    """Applies only to a child younger than this many whole months at receipt."""
    injury_reported: bool | None = None
    injury_sites: frozenset[str] = field(default_factory=frozenset)
    """Applies only when an injury at one of these sites is reported (empty: any or none)."""
    injury_photographed: bool | None = None
    concerns: frozenset[str] = field(default_factory=frozenset)
    """Applies only when the referral raises one of these concerns (empty: any)."""
    referrer_relationships: frozenset[str] = field(default_factory=frozenset)
    """Applies only when the referrer is one of these (empty: anyone)."""
    history_at_least: tuple[tuple[str, float], ...] = ()
    """(catalogue signal, minimum): applies only when each history signal reaches its minimum."""

    @property
    def reads_history(self) -> bool:
        """Whether the rule needs the child's history."""
        return bool(self.history_at_least)

    def applies(self, facts: ReferralFacts) -> bool:
        """Whether every condition of the rule holds for this referral."""
        if self.under_age_months is not None and not facts.age_months < self.under_age_months:
            return False
        if self.injury_reported is not None and facts.injury_reported is not self.injury_reported:
            return False
        if self.injury_sites and not (
            facts.injury_reported and self.injury_sites & facts.injury_sites
        ):
            return False
        if self.injury_photographed is not None and (
            facts.injury_photographed is not self.injury_photographed
        ):
            return False
        if self.concerns and not self.concerns & facts.concerns:
            return False
        if self.referrer_relationships and (
            facts.referrer_relationship not in self.referrer_relationships
        ):
            return False
        if self.history_at_least:
            history = facts.history
            if history is None:
                return False
            return all(history.get(name, 0.0) >= least for name, least in self.history_at_least)
        return True

    def describe(self) -> dict[str, object]:
        """JSON form for the API and the docs."""
        conditions: dict[str, object] = {}
        if self.under_age_months is not None:
            conditions["age_months_below"] = self.under_age_months
        if self.injury_reported is not None:
            conditions["injury_reported"] = self.injury_reported
        if self.injury_sites:
            conditions["injury_sites_any_of"] = sorted(self.injury_sites)
        if self.injury_photographed is not None:
            conditions["injury_photographed"] = self.injury_photographed
        if self.concerns:
            conditions["concerns_any_of"] = sorted(self.concerns)
        if self.referrer_relationships:
            conditions["referrer_relationship_any_of"] = sorted(self.referrer_relationships)
        if self.history_at_least:
            conditions["history_at_least"] = dict(self.history_at_least)
        return {
            "code": self.code,
            "words": self.words,
            "forces_band": self.forces_band,
            "reads_history": self.reads_history,
            "when": conditions,
        }


SAFETY_RULES: tuple[SafetyRule, ...] = (
    # Bruising or any injury in a baby who cannot yet move about on their own is rarely
    # accidental; national guidance treats it as needing urgent multi-agency review.
    SafetyRule(
        code="non_mobile_infant_injury",
        words=(
            "An injury is reported to a baby under six months old, who is not yet mobile: "
            "this referral is reviewed first whatever the model's score."
        ),
        under_age_months=6,
        injury_reported=True,
    ),
    # Head injuries are the most dangerous form of physical abuse in the first two years;
    # the review's second child was 15 months old with a photographed black eye.
    SafetyRule(
        code="head_injury_under_two",
        words=(
            "An injury to the head, face or neck of a child under two is reported: "
            "this referral is reviewed first whatever the model's score."
        ),
        under_age_months=24,
        injury_sites=frozenset({"head_face_neck"}),
    ),
    # The national review: relatives sent photographs of bruising, and nobody acted on them.
    SafetyRule(
        code="family_photographed_injury",
        words=(
            "A relative or family friend reports an injury they have photographed: "
            "this referral is reviewed first whatever the model's score."
        ),
        injury_reported=True,
        injury_photographed=True,
        referrer_relationships=frozenset(RELATIVE_OR_FRIEND),
    ),
    # Repeated concerns closed one at a time were the review's pattern. More than one person
    # must have raised them: one caller repeating themselves is not corroboration.
    SafetyRule(
        code="third_referral_after_nfa",
        words=(
            "At least the third referral in 12 months, from more than one person, after "
            "earlier ones were closed with no further action: this referral is reviewed "
            "first whatever the model's score, with the whole history."
        ),
        history_at_least=(
            ("prior_referrals_child_365d", 2),
            ("prior_nfa_closures_365d", 2),
            ("distinct_referrers_365d", 2),
        ),
    ),
)
"""The rules in force. Adding one is a reviewed change: code, words, conditions, reason."""

RULES_BY_CODE: dict[str, SafetyRule] = {rule.code: rule for rule in SAFETY_RULES}
RETIRED_RULE_WORDS: dict[str, str] = {
    "infant_head_injury": (
        "An injury to the head, face or neck of a child under one year old was reported: "
        "reviewed first whatever the model's score (a rule since widened to children under two)."
    ),
}
"""Words for codes of retired rules, still stored on older scores."""
HISTORY_SIGNALS: frozenset[str] = frozenset(
    name for rule in SAFETY_RULES for name, _ in rule.history_at_least
)
"""The catalogue signals the rules read."""


@dataclass(frozen=True)
class SafetyOutcome:
    """The band after the safety rules, and the rules that fired (in rule order)."""

    band: str | None
    model_band: str | None
    flags: tuple[SafetyRule, ...]

    @property
    def flag_codes(self) -> list[str]:
        """The codes of the rules that fired."""
        return [rule.code for rule in self.flags]

    @property
    def forced(self) -> bool:
        """Whether a rule moved the band above the model's."""
        return self.band != self.model_band


def band_rank(band: str) -> int:
    """Position of a band, 0 for the highest; an unknown band ranks below them all."""
    return BANDS.index(band) if band in BANDS else len(BANDS)


def apply_safety_rules(
    facts: ReferralFacts, model_band: str | None, rules: Iterable[SafetyRule] = SAFETY_RULES
) -> SafetyOutcome:
    """The band a referral takes: the model's, raised to any band a firing rule forces."""
    fired = tuple(rule for rule in rules if rule.applies(facts))
    band = model_band
    for rule in fired:
        if band is not None and band_rank(rule.forces_band) < band_rank(band):
            band = rule.forces_band
    return SafetyOutcome(band=band, model_band=model_band, flags=fired)


def flags_in_words(codes: Collection[str]) -> list[dict[str, str]]:
    """Stored flag codes with the words a practitioner reads (unknown codes kept as-is)."""
    return [{"code": code, "words": _rule_words(code)} for code in codes]


def _rule_words(code: str) -> str:
    if code in RULES_BY_CODE:
        return RULES_BY_CODE[code].words
    return RETIRED_RULE_WORDS.get(code, code)


def age_in_months(born: date, on: date) -> int:
    """Whole calendar months completed between two dates (as the feature layer counts)."""
    return (on.year - born.year) * 12 + (on.month - born.month) - (on.day < born.day)


def facts_for(
    *,
    date_of_birth: date,
    received_at: datetime,
    injury_reported: bool,
    injury_sites: Collection[str],
    concerns: Collection[str],
    referrer_relationship: str | None = None,
    injury_photographed: bool | None = False,
    history: Mapping[str, float] | None = None,
) -> ReferralFacts:
    """The facts of a stored or incoming referral (age counted on the UTC date of receipt)."""
    on = received_at.astimezone(UTC).date()
    return ReferralFacts(
        age_months=age_in_months(date_of_birth, on),
        injury_reported=bool(injury_reported),
        injury_sites=frozenset(injury_sites),
        concerns=frozenset(concerns),
        referrer_relationship=referrer_relationship,
        injury_photographed=bool(injury_photographed),
        history=None if history is None else {n: history[n] for n in HISTORY_SIGNALS},
    )


def queue_tier(*, flagged: bool, band: str | None) -> int:
    """Tier of an open referral: safety flags first, then unscored, then every scored one."""
    if flagged:
        return TIER_SAFETY_UNSCORED if band is None else TIER_SAFETY
    if band is None:
        return TIER_UNSCORED  # fail-safe: a referral the model could not score is never buried
    return TIER_SCORED


def look_by(received_at: datetime, band: str | None, *, tier: int = TIER_SCORED) -> datetime:
    """When a referral should have been looked at: receipt plus its band's hours.

    In the safety and unscored tiers it is the receipt itself (oldest first within them).
    """
    if tier < TIER_SCORED or band is None:
        return received_at
    hours = BAND_LOOK_HOURS.get(band, LOOK_HOURS_UNKNOWN_BAND)
    return received_at + timedelta(hours=hours)


def queue_sort_key(
    *, tier: int, rank_at: datetime, probability: float | None, referral_id: str
) -> tuple[int, datetime, float, str]:
    """The ascending key the queue is ordered by (probability negated: high first)."""
    return (tier, rank_at, -probability if probability is not None else 0.0, referral_id)


def due_by(received_at: datetime, working_days: int = WORKING_DAYS_TO_DECIDE) -> datetime:
    """When a decision is due: ``working_days`` × 24 hours counted on weekdays only (UTC).

    Received on a weekend, the clock starts at the beginning of Monday. Received on a Friday
    at 10:00, it is due on Monday at 10:00.
    """
    moment = received_at.astimezone(UTC)
    while moment.weekday() >= 5:
        moment = datetime.combine(moment.date() + timedelta(days=1), time(0), tzinfo=UTC)
    for _ in range(working_days):
        moment += timedelta(days=1)
        while moment.weekday() >= 5:
            moment += timedelta(days=1)
    return moment


def overdue_cutoff(now: datetime, working_days: int = WORKING_DAYS_TO_DECIDE) -> datetime:
    """The receipt time before which a referral is overdue at ``now`` (``due_by`` inverted).

    ``due_by`` never decreases as receipt moves later, so the overdue referrals are exactly those
    received before one moment, found here by bisection to the microsecond.
    """
    early, late = now - timedelta(days=3 + 2 * working_days), now
    while late - early > timedelta(microseconds=1):
        middle = early + (late - early) / 2
        if due_by(middle, working_days) < now:
            early = middle
        else:
            late = middle
    return late
