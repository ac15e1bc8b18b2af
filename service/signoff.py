"""The decision gate: closing decisions that skip the checks need a rationale and a manager.

A decision that closes (no further action, or information and advice: signposting) a
physical-abuse concern without the child seen, or a repeat referral (an earlier referral
about the child within 12 months) with no agency check answered and no strategy discussion
(checks on any referral about the child since this one arrived count), is recorded as
awaiting sign-off: the referral stays in the queue until a manager signs it
off, or the manager sends it back and the referral is open again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from service.errors import Conflict, invalid, not_found
from service.scoring import enqueue
from triage.checks import SignOffIn, SignOffVerdict
from triage.schema import DecisionIn
from triage.store import (
    ReferralNotDecided,
    add_audit_event,
    decisions_for_referral,
    get_child,
    get_referral,
    latest_score,
    remove_queue_entry,
    reopen_referral,
)
from triage.store.checks import (
    add_sign_off,
    awaiting_sign_off,
    check_requests_for_referrals,
    earlier_referral_within,
    facts_for_referrals,
    referrals_awaiting_sign_off,
    referrals_of_child,
    settle_sign_off,
    sign_offs_awaiting,
    sign_offs_for_referrals,
    strategy_discussions_for_referrals,
    supersede_sign_offs,
)
from triage.store.tables import SignOffRow, utcnow
from triage.vocab import Concern, DecisionKind

CLOSING_DECISIONS = frozenset({DecisionKind.no_further_action, DecisionKind.information_advice})
"""Decisions that close the front door's involvement (no further action; signposting)."""
LOCAL = ZoneInfo("Europe/London")


def _day(moment: datetime) -> str:
    local = moment.astimezone(LOCAL)
    return f"{local.day} {local:%B %Y}"


def sign_off_required(session: Session, referral_id: str, decision_kind: str) -> list[str]:
    """Why a decision of ``decision_kind`` on the referral needs a manager's sign-off (in
    words; empty: it does not)."""
    if decision_kind not in CLOSING_DECISIONS:
        return []
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        return []
    # Checks made for another referral about the same child count, from this one's arrival:
    # two referrals about one incident are checked once.
    since = referral.received_at
    ids = referrals_of_child(session, child_id=referral.child_id) or [referral_id]
    reasons = []
    if Concern.physical_abuse in referral.concerns:
        seen = [
            f.value
            for f in facts_for_referrals(session, referral_ids=ids)
            if f.kind == "child_seen" and f.occurred_at >= since
        ]
        if not seen or seen[-1] != "yes":  # the latest answer counts
            reasons.append(
                "It closes a physical-abuse concern and the child is not recorded as seen."
            )
    earlier = earlier_referral_within(
        session, child_id=referral.child_id, before=referral.received_at
    )
    if earlier is not None:
        answered = any(
            r.replied_at is not None and r.replied_at >= since
            for r in check_requests_for_referrals(session, referral_ids=ids)
        )
        discussed = any(
            d.held_at >= since
            for d in strategy_discussions_for_referrals(session, referral_ids=ids)
        )
        if not answered and not discussed:
            reasons.append(
                "It closes a repeat referral (an earlier referral about this child was received "
                f"on {_day(earlier.received_at)}) with no agency check answered and no "
                "strategy discussion."
            )
    return reasons


def hold_for_sign_off(
    session: Session, *, referral_id: str, decision: DecisionIn, decision_id: int, actor: str
) -> dict[str, Any] | None:
    """Hold a just-recorded decision for sign-off when the gate asks for it (None: it does not).

    Called in the decision's transaction: a missing rationale is a 422 (field ``rationale``)
    and nothing of the decision is kept. A held decision keeps its queue entry.
    """
    # A sign-off left awaiting when a manager reopened the referral no longer holds anything.
    supersede_sign_offs(session, referral_id=referral_id, at=utcnow())
    reasons = sign_off_required(session, referral_id, str(decision.decision))
    if not reasons:
        return None
    if not (decision.rationale or "").strip():
        reason = "Give a rationale: a manager signs off this decision. " + " ".join(reasons)
        raise invalid(
            [{"field": "rationale", "reason": reason}],
            "this decision needs a rationale and a manager's sign-off",
        )
    row = add_sign_off(
        session,
        referral_id=referral_id,
        decision_id=decision_id,
        reasons=reasons,
        requested_by=actor,
        requested_at=utcnow(),
    )
    add_audit_event(
        session,
        actor=actor,
        action="signoff.requested",
        entity_type="referral",
        entity_id=referral_id,
        payload={
            "sign_off_id": row.sign_off_id,
            "decision_id": decision_id,
            "reasons": len(reasons),
        },
    )
    return sign_off_out(row)


def settle(session: Session, *, referral_id: str, body: SignOffIn, actor: str) -> dict[str, Any]:
    """A manager signs off the held decision (the referral leaves the queue) or sends it back
    (the referral is open again, placed by its latest score); never one's own decision (409)."""
    row = awaiting_sign_off(session, referral_id=referral_id)
    if row is None:
        if get_referral(session, referral_id=referral_id) is None:
            raise not_found("referral", referral_id)
        raise Conflict(
            "nothing_to_sign_off", f"referral {referral_id!r} has no decision awaiting sign-off"
        )
    referral = get_referral(session, referral_id=referral_id)
    if referral is None or referral.status != "decided":
        raise Conflict("reopened", f"referral {referral_id!r} was reopened: nothing to sign off")
    if row.requested_by == actor:
        raise Conflict("own_decision", "a decision is signed off by another manager, not its maker")
    now = utcnow()
    status = "signed_off" if body.verdict is SignOffVerdict.sign_off else "sent_back"
    if not settle_sign_off(
        session,
        sign_off_id=row.sign_off_id,
        status=status,
        decided_by=actor,
        at=now,
        note=body.note,
    ):
        raise Conflict("already_settled", "another manager has just answered this sign-off")
    if status == "signed_off":
        remove_queue_entry(session, referral_id=referral_id)
    else:
        try:
            reopened = reopen_referral(session, referral_id=referral_id)
        except ReferralNotDecided:
            raise Conflict("not_decided", f"referral {referral_id!r} is already open") from None
        # Rescoring passed the held referral by: its entry is rebuilt from the latest score.
        child = get_child(session, child_id=reopened.child_id)
        assert child is not None
        enqueue(
            session,
            referral=reopened,
            child=child,
            score=latest_score(session, referral_id=referral_id),
        )
    add_audit_event(
        session,
        actor=actor,
        action=f"signoff.{status}",
        entity_type="referral",
        entity_id=referral_id,
        payload={
            "sign_off_id": row.sign_off_id,
            "decision_id": row.decision_id,
            "note_chars": len(body.note),
        },
    )
    session.commit()
    session.refresh(row)
    return sign_off_out(row)


def sign_off_out(row: SignOffRow) -> dict[str, Any]:
    """A sign-off with its state."""
    return {
        "sign_off_id": row.sign_off_id,
        "referral_id": row.referral_id,
        "decision_id": row.decision_id,
        "reasons": list(row.reasons),
        "status": row.status,
        "requested_by": row.requested_by,
        "requested_at": row.requested_at,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "note": row.note,
    }


def sign_offs_of(session: Session, *, referral_id: str) -> list[dict[str, Any]]:
    """Every sign-off on a referral, oldest first."""
    return [sign_off_out(r) for r in sign_offs_for_referrals(session, referral_ids=[referral_id])]


def awaiting(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """Decisions awaiting sign-off, oldest first, with the decision and the rationale."""
    return [
        sign_off_out(row)
        | {
            "decision": decision.decision,
            "rationale": decision.rationale,
            "received_at": referral.received_at,
            "concerns": list(referral.concerns),
        }
        for row, decision, referral in sign_offs_awaiting(session, limit=limit)
    ]


def awaiting_sign_off_among(session: Session, referral_ids: list[str]) -> set[str]:
    """Which of these referrals have a decision awaiting sign-off (for the queue)."""
    return referrals_awaiting_sign_off(session, referral_ids=referral_ids)


def decision_of(session: Session, *, referral_id: str, decision_id: int) -> dict[str, Any] | None:
    """The decision a sign-off holds, as recorded."""
    for row in decisions_for_referral(session, referral_id=referral_id):
        if row.id == decision_id:
            return {
                "decision": row.decision,
                "agreement": row.agreement,
                "rationale": row.rationale,
                "decided_at": row.decided_at,
                "decided_by": row.decided_by,
            }
    return None
