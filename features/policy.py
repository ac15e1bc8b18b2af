"""The priority policy: whose voice counts, declared once, obeyed by every model family.

The national review behind this project found that relatives' repeated concerns were not
acted on. A model trained on past decisions learns that failure back (relatives' referrals
were investigated less often, so their label is recorded less often). The policy forbids it:

- signals that count concerns raised (relatives' concerns, repeats of a concern, distinct
  referrers, earlier injury reports, earlier closures with no further action followed by a
  new referral, earlier referrals and how recent the last one was) never lower priority as
  they grow. Their contribution is measured from "none" (no such record), so it is never
  below zero, and the model is constrained to be monotone in them;
- who made a referral never lowers its priority: referrer-type signals are either not model
  inputs or contribute nothing below zero;
- who lives with the child never lowers priority as it adds up (version 2): new adults, an
  unrelated adult, an adult with a violence, domestic-abuse or probation record, a parent's
  earlier care proceedings, a sibling on a plan or looked after, household changes, and the
  records of the households a child has moved from. A model fitted to past decisions would
  otherwise learn how rarely these were known or acted on at the front door.

A model that breaks the policy cannot be promoted (``models.gates``): the gate names the signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from features.catalogue import SIGNAL_NAMES, SIGNALS, Aggregation, Direction

POLICY_VERSION = "priority-policy/2"
"""2: who lives with the child joins the policy (catalogue version 3)."""


class Rule(StrEnum):
    """What the policy asks of a signal."""

    never_lowers = "never_lowers"
    """Monotone in the catalogue's direction, contribution measured from "none" (never < 0)."""
    not_an_input = "not_an_input"
    """Never a model input."""


@dataclass(frozen=True)
class PolicyEntry:
    """One signal under the policy, with the rule it obeys and why, in words."""

    signal: str
    rule: Rule
    why: str

    @property
    def none_value(self) -> float:
        """The value that means "no such record": the reference contributions start from."""
        if SIGNALS[self.signal].aggregation is Aggregation.days_since:
            return math.nan  # no earlier referral
        return 0.0


_REPEATS = "Repeated concerns are evidence to weigh, never a reason to look less closely."
_VOICE = "Who raised a concern never lowers its priority; relatives' concerns were not acted on."
_NEW_ADULT = (
    "In both cases behind the national review a child lived with a new adult shortly before "
    "the abuse escalated; a new adult is a reason to look closer, never to look less."
)
_HOUSEHOLD = (
    "The strongest published household risk factor for fatal maltreatment of young children is "
    "an unrelated adult living in the household."
)
_ADULT_RISK = (
    "An adult's own record of violence, domestic abuse or probation is evidence about the "
    "child's safety wherever it was recorded."
)

PRIORITY_POLICY: tuple[PolicyEntry, ...] = (
    PolicyEntry("prior_referrals_child_90d", Rule.never_lowers, _REPEATS),
    PolicyEntry("prior_referrals_child_365d", Rule.never_lowers, _REPEATS),
    PolicyEntry("prior_referrals_child_all", Rule.never_lowers, _REPEATS),
    PolicyEntry("prior_referrals_household_365d", Rule.never_lowers, _REPEATS),
    PolicyEntry("days_since_last_referral", Rule.never_lowers,
                "A recent earlier referral never makes a new one less urgent than none at all."),
    PolicyEntry("distinct_referrers_365d", Rule.never_lowers,
                "More people raising concerns is corroboration, not noise."),
    PolicyEntry("relative_friend_concerns_365d", Rule.never_lowers, _VOICE),
    PolicyEntry("repeat_same_concern_365d", Rule.never_lowers, _REPEATS),
    PolicyEntry("prior_injury_reports_365d", Rule.never_lowers,
                "Earlier injury reports add to a pattern; they never explain one away."),
    PolicyEntry("prior_nfa_closures_365d", Rule.never_lowers,
                "A new referral after earlier closures with no further action needs a fresh "
                "look at the whole history, not less attention."),
    PolicyEntry("referrer_relative_friend", Rule.never_lowers, _VOICE),
    PolicyEntry("adult_joined_household_90d", Rule.never_lowers, _NEW_ADULT),
    PolicyEntry("adult_joined_household_365d", Rule.never_lowers, _NEW_ADULT),
    PolicyEntry("unrelated_adult_in_household", Rule.never_lowers, _HOUSEHOLD),
    PolicyEntry("risk_adult_joined_household_365d", Rule.never_lowers, _ADULT_RISK),
    PolicyEntry("risk_adult_in_household", Rule.never_lowers, _ADULT_RISK),
    PolicyEntry("parent_care_history", Rule.never_lowers,
                "A parent's earlier care proceedings or removed child are history the front "
                "door must weigh, never a reason for less attention."),
    PolicyEntry("sibling_on_plan_or_looked_after", Rule.never_lowers,
                "A brother or sister on a plan or looked after now means the household is "
                "already known to be unsafe for a child."),
    PolicyEntry("household_changes_365d", Rule.never_lowers,
                "Adults and children moving in and out is instability to look into, not "
                "noise to discount."),
    PolicyEntry("police_da_incidents_household_365d", Rule.never_lowers,
                "Domestic abuse where the child lives, or lived, adds to a pattern; it never "
                "explains one away."),
    PolicyEntry("household_adult_violence_history", Rule.never_lowers, _ADULT_RISK),
    PolicyEntry("referrer_professional", Rule.not_an_input,
                "Whether the referrer is a professional says nothing the concern itself does "
                "not; as an input it lowers every non-professional's referral."),
    PolicyEntry("referrer_anonymous", Rule.not_an_input,
                "An anonymous concern is assessed on what it reports, not on who made it."),
)  # fmt: skip

POLICY: dict[str, PolicyEntry] = {entry.signal: entry for entry in PRIORITY_POLICY}
NEVER_LOWERS: frozenset[str] = frozenset(
    e.signal for e in PRIORITY_POLICY if e.rule is Rule.never_lowers
)
NOT_INPUTS: frozenset[str] = frozenset(
    e.signal for e in PRIORITY_POLICY if e.rule is Rule.not_an_input
)


def check_policy_declarations() -> None:
    """Fail loudly if the policy names an unknown signal or one without a direction."""
    for entry in PRIORITY_POLICY:
        if entry.signal not in SIGNALS:
            raise ValueError(f"the priority policy names an unknown signal: {entry.signal}")
        if entry.rule is Rule.never_lowers and SIGNALS[entry.signal].direction is None:
            raise ValueError(f"{entry.signal} is under the policy but has no direction")


def priority_order_sign(signal: str) -> int:
    """+1 if larger values mean higher priority, -1 if smaller ones do, 0 if undeclared."""
    direction = SIGNALS[signal].direction
    if direction is None:
        return 0
    return 1 if direction is Direction.raises else -1


def reference_values(signals: tuple[str, ...]) -> dict[int, float]:
    """Column index → "none" value of each never-lowers signal among ``signals``."""
    return {j: POLICY[s].none_value for j, s in enumerate(signals) if s in NEVER_LOWERS}


def model_inputs(signals: tuple[str, ...]) -> tuple[str, ...]:
    """``signals`` without those the policy keeps out of every model."""
    return tuple(s for s in signals if s not in NOT_INPUTS)


DEFAULT_MODEL_INPUTS: tuple[str, ...] = model_inputs(SIGNAL_NAMES)
"""The signals a model uses unless told otherwise: the catalogue less what the policy keeps out
(no protected attribute is a signal at all)."""


def policy_rows() -> list[dict[str, str]]:
    """The policy as rows of text, for ``GET /v1/model``, the model card and the docs."""
    return [{"signal": e.signal, "rule": e.rule.value, "why": e.why} for e in PRIORITY_POLICY]


def policy_markdown() -> str:
    """The policy as a Markdown table (the docs site's signal reference is built from it)."""
    lines = ["| signal | rule | why |", "|---|---|---|"]
    lines += [
        f"| `{r['signal']}` | {r['rule'].replace('_', ' ')} | {r['why']} |" for r in policy_rows()
    ]
    return "\n".join(lines)


check_policy_declarations()
