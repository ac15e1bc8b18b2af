"""Deciding without anchoring: the practitioner's own priority, the rationale rule, judge first.

The practitioner gives their own priority on the four bands; agreement with the model is
derived from it, never asked. A rationale is required by what the referral holds (a closing
decision on a referral with an injury or an earlier referral in 12 months), never by whether
the practitioner agrees. In "judge first" mode the band stays hidden until the practitioner
has recorded their priority.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.errors import Conflict, invalid, not_found
from service.signoff import require_rationale_for_sign_off, sign_off_required
from service.views import referral_out
from triage.schema import BandAgreement, DecisionIn, derive_agreement
from triage.store import add_audit_event, get_child, get_referral, latest_score
from triage.store.decision_support import (
    add_priority_judgement,
    earlier_referrals_of_child,
    get_priority_judgement,
    get_team_setting,
    judged_referral_ids,
    save_team_setting,
)
from triage.store.tables import ReferralRow, utcnow
from triage.vocab import CLOSING_DECISIONS, DecisionKind, Priority

MODE_SETTING = "decision_mode"
BAND_SHOWN = "band_shown"
JUDGE_FIRST = "judge_first"
DECISION_MODES = (BAND_SHOWN, JUDGE_FIRST)
EARLIER_REFERRAL_WINDOW = timedelta(days=365)


@dataclass(frozen=True)
class DecisionTerms:
    """What is stored beside a decision: the priority, the agreement derived from it, and how."""

    priority: Priority | None
    agreement: BandAgreement | None
    priority_before_band: bool | None


def decision_mode(session: Session) -> str:
    """The team's decision mode: ``band_shown`` (the default) or ``judge_first``."""
    row = get_team_setting(session, name=MODE_SETTING)
    return row.value if row is not None and row.value in DECISION_MODES else BAND_SHOWN


def set_decision_mode(session: Session, *, mode: str, actor: str) -> str:
    """Switch the team's decision mode (a manager's act, audited); 422 for an unknown mode."""
    if mode not in DECISION_MODES:
        reason = f"must be one of {', '.join(DECISION_MODES)}"
        raise invalid([{"field": "mode", "reason": reason}])
    before = decision_mode(session)
    save_team_setting(session, name=MODE_SETTING, value=mode, changed_by=actor, changed_at=utcnow())
    add_audit_event(
        session,
        actor=actor,
        action="team.decision_mode_changed",
        entity_type="team",
        payload={"from": before, "to": mode},
    )
    session.commit()
    return mode


def rationale_reasons(
    session: Session, *, referral: ReferralRow, decision: DecisionKind
) -> list[str]:
    """Why a rationale is required for ``decision`` on this referral, in words (empty: optional)."""
    if decision not in CLOSING_DECISIONS:
        return []
    reasons = []
    if referral.injury_reported:
        reasons.append("the referral reports an injury")
    earlier = earlier_referrals_of_child(
        session,
        child_id=referral.child_id,
        since=referral.received_at - EARLIER_REFERRAL_WINDOW,
        before=referral.received_at,
    )
    if earlier:
        day = earlier[0]
        reasons.append(
            f"there was an earlier referral about this child in the 12 months before "
            f"(received {day.day} {day:%b %Y})"
        )
    return reasons


def band_hidden(session: Session, *, referral: ReferralRow, viewer: str) -> bool:
    """Whether ``viewer`` must give their own priority before the band is shown to them."""
    if referral.status != "open" or decision_mode(session) != JUDGE_FIRST:
        return False
    return (
        get_priority_judgement(session, referral_id=referral.referral_id, judged_by=viewer) is None
    )


def bands_hidden_in_queue(session: Session, *, referral_ids: list[str], viewer: str) -> set[str]:
    """The open referrals whose band ``viewer`` must not see yet (judge first, no priority)."""
    if decision_mode(session) != JUDGE_FIRST:
        return set()
    judged = judged_referral_ids(session, referral_ids=referral_ids, judged_by=viewer)
    return set(referral_ids) - judged


def band_hidden_for(session: Session, *, referral_id: str, viewer: str) -> bool:
    """``band_hidden`` by referral id (False for an unknown referral: the page 404s anyway)."""
    referral = get_referral(session, referral_id=referral_id)
    return referral is not None and band_hidden(session, referral=referral, viewer=viewer)


def decision_step(session: Session, *, referral_id: str, viewer: str) -> dict[str, Any]:
    """What the decision pages show: the referral, the band unless hidden, the rationale rule."""
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        raise not_found("referral", referral_id)
    score = latest_score(session, referral_id=referral_id)
    hidden = band_hidden(session, referral=referral, viewer=viewer)
    return {
        "referral": referral_out(referral, get_child(session, child_id=referral.child_id)),
        "band": score.band if score is not None and not hidden else None,
        "scored": score is not None,
        "band_hidden": hidden,
        "mode": decision_mode(session),
        "blind_priority": blind_priority(session, referral_id=referral_id, viewer=viewer),
        "rationale_reasons": rationale_reasons(
            session, referral=referral, decision=DecisionKind.no_further_action
        ),
    }


def preview(
    session: Session, *, referral_id: str, decision: DecisionIn, actor: str
) -> dict[str, Any]:
    """Check a decision as ``decide`` will, without storing it: the band and derived agreement."""
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        raise not_found("referral", referral_id)
    if referral.status != "open":
        raise Conflict("already_decided", f"referral {referral_id!r} already has a decision")
    score = latest_score(session, referral_id=referral_id)
    band = score.band if score is not None else None
    # The checks' sign-off gate is known now, so "check your answers" can say so.
    also = rationale_reasons(session, referral=referral, decision=decision.decision)
    require_rationale_for_sign_off(session, referral_id=referral_id, decision=decision, also=also)
    terms = decision_terms(session, referral=referral, decision=decision, band=band, actor=actor)
    return {
        "band": band,
        "agreement": terms.agreement,
        "before_band": terms.priority_before_band,
        "sign_off": sign_off_required(session, referral_id, str(decision.decision)),
    }


def blind_priority(session: Session, *, referral_id: str, viewer: str) -> Priority | None:
    """The priority ``viewer`` recorded for the referral before seeing the band, if any."""
    row = get_priority_judgement(session, referral_id=referral_id, judged_by=viewer)
    return Priority(row.priority) if row is not None else None


def judge_priority(
    session: Session, *, referral_id: str, priority: Priority, actor: str
) -> dict[str, Any]:
    """Record ``actor``'s priority before the band is shown (once: a second is not stored)."""
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        raise not_found("referral", referral_id)
    if referral.status != "open":
        raise Conflict("already_decided", f"referral {referral_id!r} already has a decision")
    row, stored = add_priority_judgement(
        session,
        referral_id=referral_id,
        judged_by=actor,
        priority=str(priority),
        judged_at=utcnow(),
    )
    add_audit_event(
        session,
        actor=actor,
        action="referral.priority_judged",
        entity_type="referral",
        entity_id=referral_id,
        payload={"priority": row.priority, "stored": stored},
    )
    session.commit()
    return {"referral_id": referral_id, "priority": row.priority, "judged_at": row.judged_at}


def decision_terms(
    session: Session, *, referral: ReferralRow, decision: DecisionIn, band: str | None, actor: str
) -> DecisionTerms:
    """Check the rationale rule and derive agreement; 422 naming the field when either fails."""
    reasons = rationale_reasons(session, referral=referral, decision=decision.decision)
    if reasons and not decision.rationale:
        why = "; ".join(reasons)
        raise invalid(
            [{"field": "rationale", "reason": f"required for {decision.decision}: {why}"}]
        )
    if decision.priority is None:  # an older client: agreement as sent, no priority
        return DecisionTerms(None, decision.agreement, None)
    agreement = derive_agreement(decision.priority, band)
    if decision.agreement is not None and decision.agreement != agreement:
        reason = (
            f"contradicts priority {decision.priority} against the band {band or '(none)'}, "
            f"which gives {agreement or 'no agreement'}; leave agreement out, it is derived"
        )
        raise invalid([{"field": "agreement", "reason": reason}])
    blind = blind_priority(session, referral_id=referral.referral_id, viewer=actor)
    return DecisionTerms(
        decision.priority, agreement, blind is not None and blind == decision.priority
    )
