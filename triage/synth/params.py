"""The synthetic world's knobs: every behaviour worth studying is an explicit, documented field."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

DRIFTABLE_KNOBS = frozenset(
    {
        "harm_detection_rate",
        "family_notice_probability",
        "family_repeat_mean",
        "family_photograph_probability",
    }
)
"""Knobs that can change part-way through the window (``WorldParams.drift``): each is read
where the time of the episode or referral it governs is known."""

WORLD_VERSION = "3"
"""3: people in the household (adults, memberships over time, moves, person-level records)."""

REFERRALS_PER_CHILD_YEAR = 642_980 / 12_000_000
"""England, 2020: referrals a year over about 12 million children; sizes the implicit population."""


@dataclass(frozen=True)
class WorldParams:
    """Parameters of one synthetic world; the defaults reproduce the calibration targets."""

    seed: int = 2026
    n_referrals: int = 50_000
    """Expected number of referrals in the whole window (Poisson noise of a few hundred)."""
    end: date = date(2026, 11, 1)
    """Extract date; the window is the ``years`` before it."""
    years: int = 7
    open_days: float = 3.0
    """Referrals in the last ``open_days`` before ``end`` have no decision yet: the queue."""

    # Latent household risk (prevalence in the population, before deprivation and shared frailty).
    domestic_abuse_prevalence: float = 0.05
    mental_health_prevalence: float = 0.07
    substance_misuse_prevalence: float = 0.03
    adult_violence_prevalence: float = 0.025
    custody_dispute_share: float = 0.008
    """Households in a custody dispute, where a parent or relative may refer again and again."""
    persistent_caller_share: float = 0.002
    """Households with a neighbour or relative who raises concerns again and again, in good
    faith, with no harm behind them: repetition from one person that nothing corroborates."""

    # People in the household (ONS Families and households; see docs/concepts/synthetic-world.md).
    couple_at_birth: float = 0.87
    """Share of families whose first child is born to parents living together (the rest start
    as lone-parent families); lower in deprived areas."""
    separation_rate: float = 0.019
    """Separations a year of parents living together; the other parent leaves."""
    repartner_rate: float = 0.12
    """New partners joining a lone parent's household, a year."""
    step_parent_share: float = 0.35
    """Share of new partners recorded as a step-parent (married or settled); the rest are a
    parent's partner (role ``parent_partner``)."""
    partner_leave_rate: float = 0.5
    """Partners (not step-parents) leaving, a year: many new partnerships are short."""
    step_parent_leave_rate: float = 0.09
    relative_join_rate: float = 0.02
    """Other adult relatives (a grandparent, an adult sibling) moving in, a year."""
    lodger_join_rate: float = 0.012
    """Unrelated adults (a lodger, a friend) moving in, a year."""
    other_parent_household_share: float = 0.4
    """After a separation, the share of leaving parents who set up a home the children use."""
    shared_care_probability: float = 0.35
    """In that case, the chance each child (under 16) is then in shared care in both homes."""
    move_to_other_parent_probability: float = 0.2
    """... or moves to live with the other parent."""
    kinship_move_rate: float = 0.0006
    """Moves of the children to a grandparent's household, a year, before household risk."""
    partner_record_probability: float = 0.55
    """Chance the agencies record that a new partner or lodger lives with the child (a parent or
    step-parent is recorded more often); the rest live there unknown to them."""

    # Who lives with the child changes the hazard of maltreatment (people-and-voices.md:
    # Stiffman 2002, Schnitzer & Ewigman 2005). Multipliers of the episode rate.
    unrelated_adult_harm: float = 2.0
    """An unrelated adult (a parent's partner, a lodger) in the household."""
    unrelated_adult_physical_harm: float = 2.5
    """Further multiplier for physical abuse while an unrelated adult is present."""
    unrelated_adult_young_harm: float = 1.5
    """Further multiplier for a child under five while an unrelated adult is present."""
    step_parent_harm: float = 1.5
    step_parent_physical_harm: float = 1.4
    relative_harm: float = 1.15
    """Other adult relatives living with a parent and the child."""
    violent_adult_harm: float = 2.46
    """An adult with a history of violence in the household (all episode types)."""
    perpetrator_harm: float = 1.5
    """An adult who perpetrates domestic abuse in the household."""

    # Latent maltreatment (the truth the observed labels only partly reveal).
    harm_base_rate: float = 0.0039
    """Maltreatment episodes per child-year in a household with no risk factor, ages 5 to 11."""
    infant_harm_multiplier: float = 6.5
    """Infants (under 1) are the most vulnerable: their episode rate is this multiple."""

    # Surveillance bias: agencies see more deprived households more often, whatever the harm.
    surveillance_bias: float = 0.7
    """Log-rate rise of agency contacts and non-harm referrals per half the deprivation range."""

    # Referrals.
    harm_detection_rate: float = 0.9
    """Expected referrals raised by one maltreatment episode (before surveillance bias)."""
    family_notice_probability: float = 0.01
    """Chance that relatives or family friends notice a maltreatment episode of a child under
    five, whom family see at home more than any agency does (half that at school age)."""
    family_repeat_mean: float = 1.5
    """Once family have noticed, the mean number of further referrals they make (several
    family members and friends, each raising the same concern)."""
    family_photograph_probability: float = 0.8
    """Chance that family who report an injury they saw also send photographs of it."""
    unfounded_referral_rate: float = 0.0012
    """Good-faith referrals per child-year with no maltreatment behind them."""
    malicious_referral_rate: float = 0.00008
    """Intentionally false referrals per child-year outside a custody dispute."""
    custody_dispute_referral_rate: float = 0.08
    """Referrals per child-year from a parent or relative on one side of a custody dispute."""
    persistent_caller_rate: float = 0.3
    """Referrals per child-year from a household's persistent caller."""
    custody_dispute_false_share: float = 0.18
    """Share of those custody-dispute referrals that are intentionally false (the rest are
    concerns raised in good faith that nobody substantiates)."""
    follow_up_probability: float = 0.03
    """Chance that a referral is followed by another about the same child within 12 months."""
    lockdown_school_drop: float = 0.75
    """Share of school referrals lost while schools were closed (23 March to 1 June 2020)."""

    # Historic front-door decisions and the outcome funnel.
    decision_truth_weight: float = 1.4
    """How strongly the (unseen) truth moves historic decisions, against visible signals."""
    decision_deprivation_bias: float = 0.25
    """Extra weight historic decisions put on deprivation, whatever the harm."""
    decision_noise: float = 1.6
    substantiation_truth_weight: float = 2.5
    """How strongly true harm decides which investigations end in a plan (selective labels)."""
    in_case_s47_probability: float = 0.18
    """Chance that a child-in-need case has a section 47 enquiry later, without a new referral."""
    plan_mean_days: float = 310.0
    """Mean duration of a child protection plan."""

    funnel_shares: dict[str, float] = field(
        default_factory=lambda: {
            "no_further_action": 0.216,
            "not_in_need": 0.200,
            "child_in_need": 0.332,
            "s47_enquiry": 0.116,
            "initial_conference": 0.017,
            "cp_plan": 0.119,
        }
    )
    """Highest level of intervention (DfE 2017); the plan share is the remainder to 100%."""

    # Injected drift (monitoring): from ``drift_from`` on, each named knob takes its new value.
    drift: dict[str, float] = field(default_factory=dict)
    """Knob name (one of ``DRIFTABLE_KNOBS``) to the value it takes from ``drift_from``."""
    drift_from: date | None = None
    """First day of the drifted period; episodes and referrals from then on use ``drift``."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.drift) - DRIFTABLE_KNOBS)
        if unknown:
            raise ValueError(
                f"drift: {', '.join(unknown)} cannot drift; choose from "
                f"{', '.join(sorted(DRIFTABLE_KNOBS))}"
            )
        if self.drift and self.drift_from is None:
            raise ValueError("drift_from: required when a knob drifts")
        negative = sorted(k for k, v in self.drift.items() if not v >= 0)
        if negative:
            raise ValueError(f"drift: {', '.join(negative)} must be a number of at least 0")
        too_big = sorted(k for k, v in self.drift.items() if k.endswith("_probability") and v > 1)
        if too_big:
            raise ValueError(f"drift: {', '.join(too_big)} is a probability (at most 1)")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form for the manifest."""
        out = asdict(self)
        out["end"] = self.end.isoformat()
        out["drift_from"] = None if self.drift_from is None else self.drift_from.isoformat()
        return out
