"""Practitioner work on a referral: the queue, the detail view, decisions, disputes, reopening."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from explain.referral import what_if
from explain.unknowns import what_the_model_does_not_know
from service.champion import LoadedModel
from service.checks import check_timeline_items, outstanding_checks
from service.child_groups import newer_records, other_open_referrals, received
from service.decisions import decision_terms, rationale_reasons
from service.errors import Conflict, invalid, not_found
from service.household import household_panel, may_see_household
from service.scoring import enqueue, facts_of
from service.signoff import (
    awaiting_sign_off_among,
    hold_for_sign_off,
    require_rationale_for_sign_off,
)
from service.views import (
    decision_out,
    dispute_out,
    queue_item,
    referral_out,
    score_from_row,
    summary,
    timeline,
)
from triage.queue import BANDS, TIER_FIRST_BAND, apply_safety_rules
from triage.schema import DecisionIn
from triage.store import (
    QueueFilter,
    ReferralAlreadyDecided,
    ReferralNotDecided,
    ReferralNotFound,
    add_audit_event,
    add_dispute,
    decisions_for_referral,
    decisions_for_referrals,
    disputes_for_referral,
    get_child,
    get_queue_entry,
    get_referral,
    history_for_child,
    identity_to_confirm,
    latest_score,
    open_identity_tasks_for_referrals,
    queue_page,
    record_decision,
    record_exists,
    remove_queue_entry,
    reopen_referral,
)
from triage.store.queue import queue_key
from triage.store.referrals import HISTORY_LIMIT
from triage.store.tables import ID, ReferralRow, utcnow

WHAT_IF_REASONS = 5
CURSOR_VERSION = 2
MAX_TIER = TIER_FIRST_BAND + len(BANDS)  # an unknown band ranks below every known one


# --- the queue ------------------------------------------------------------------------------


def encode_cursor(key: tuple[int, datetime, float, str]) -> str:
    """An opaque cursor for the queue position after ``key``."""
    tier, rank_at, sort_probability, referral_id = key
    raw = json.dumps([CURSOR_VERSION, tier, rank_at.isoformat(), sort_probability, referral_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime, float, str]:
    """The queue position a cursor names; 422 for anything this service did not issue.

    Every part is checked against what ``encode_cursor`` can write, so a forged cursor (a
    20-digit tier, an infinite probability, a date that leaves the calendar in UTC) is a 422
    naming the field, never a value the database cannot bind.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, tier, rank_at, sort_probability, referral_id = json.loads(raw)
        if version != CURSOR_VERSION:
            raise ValueError(version)
        if type(tier) is not int or not 0 <= tier <= MAX_TIER:
            raise ValueError(tier)
        if type(sort_probability) not in (int, float) or not -1.0 <= sort_probability <= 0.0:
            raise ValueError(sort_probability)  # also NaN and infinities
        if not isinstance(rank_at, str) or not isinstance(referral_id, str):
            raise ValueError(referral_id)
        if not 0 < len(referral_id) <= ID:
            raise ValueError(referral_id)
        moment = datetime.fromisoformat(rank_at)
        if moment.tzinfo is None:
            raise ValueError(rank_at)
        moment = moment.astimezone(UTC)  # OverflowError for year 1 at +05:00
        return tier, moment, float(sort_probability), referral_id
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
        raise invalid(
            [{"field": "query.cursor", "reason": "not a cursor this service issued"}]
        ) from None


def waiting_at_least(filters: QueueFilter, hours: float | None, *, now: datetime) -> QueueFilter:
    """``filters`` narrowed to referrals waiting at least ``hours`` at ``now`` (None: as is)."""
    if hours is None:
        return filters
    return replace(filters, received_before=now - timedelta(hours=hours))


def read_queue(
    session: Session,
    *,
    model: LoadedModel | None,
    filters: QueueFilter,
    waiting_hours: float | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """One page of the open queue in order, with the cursor for the next."""
    now = utcnow()
    filters = waiting_at_least(filters, waiting_hours, now=now)
    after = decode_cursor(cursor) if cursor else None
    rows = queue_page(session, filters=filters, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = encode_cursor(queue_key(last))
    page_ids = [entry.referral_id for entry in page]
    to_confirm = identity_to_confirm(session, referral_ids=page_ids)
    # An open "possible same person" task: who the child is awaits a person too.
    to_confirm |= open_identity_tasks_for_referrals(session, referral_ids=page_ids)
    others = other_open_referrals(session, entries=page)
    newer = newer_records(session, entries=[received(entry) for entry in page])
    checks = outstanding_checks(session, referral_ids=page_ids)
    held = awaiting_sign_off_among(session, referral_ids=page_ids)
    return {
        "items": [
            queue_item(entry, now=now, model=model, identity_check=entry.referral_id in to_confirm)
            | {
                "other_open_referrals": others[entry.referral_id],
                "newer_records": newer[entry.referral_id],
                "outstanding_checks": checks[entry.referral_id],
                "awaiting_sign_off": entry.referral_id in held,
            }
            for entry in page
        ],
        "next_cursor": next_cursor,
        "outcome_words": model.scorer.outcome_words if model is not None else None,
        "generated_at": now,
    }


# --- one referral ---------------------------------------------------------------------------


def referral_detail(
    session: Session,
    *,
    referral_id: str,
    model: LoadedModel | None,
    roles: Collection[str] = (),
) -> dict[str, Any]:
    """A referral with its latest score and every reason, decisions, disputes and timeline;
    the household panel too when ``roles`` may see it (None otherwise: default-deny)."""
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        raise not_found("referral", referral_id)
    child = get_child(session, child_id=referral.child_id)
    score = latest_score(session, referral_id=referral_id)
    entry = get_queue_entry(session, referral_id=referral_id)
    flags = entry.flags if entry is not None else []
    if score is None and child is not None and not flags:
        flags = apply_safety_rules(facts_of(referral, child), None).flag_codes
    fields = score_from_row(
        score,
        model=model,
        top=None,
        flags_if_unscored=flags,
        model_band=entry.model_band if entry is not None else None,
    )
    history = history_for_child(session, child_id=referral.child_id) if child else []
    referral_ids = [item.row.referral_id for item in history if isinstance(item.row, ReferralRow)]
    decisions = decisions_for_referrals(session, referral_ids=referral_ids)
    return {
        "referral": referral_out(referral, child),
        "score": fields,
        "decisions": [
            decision_out(d) for d in decisions_for_referral(session, referral_id=referral_id)
        ],
        "disputes": [
            dispute_out(d) for d in disputes_for_referral(session, referral_id=referral_id)
        ],
        "timeline": timeline(
            history,
            decisions,
            referral_id=referral_id,
            reasons=fields.get("reasons", []),
            # The front door's own work about the child: checks, discussions, facts.
            team_work=check_timeline_items(
                session, referral_ids=sorted({*referral_ids, referral_id})
            ),
        ),
        "timeline_truncated": len(history) >= HISTORY_LIMIT,
        "history_through": max((item.at for item in history), default=None),
        "model_does_not_know": what_the_model_does_not_know(),
        "household": (
            household_panel(session, referral=referral, reasons=fields.get("reasons", []))
            if may_see_household(roles)
            else None
        ),
    }


def decide(
    session: Session, *, referral_id: str, decision: DecisionIn, actor: str
) -> dict[str, Any]:
    """Record the decision, close the referral and take it out of the queue (409 if decided).

    Agreement is derived from the practitioner's priority against the band at this moment;
    a rationale is required by the referral's facts, not by agreeing (``service.decisions``).
    """
    score = latest_score(session, referral_id=referral_id)
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        raise not_found("referral", referral_id)
    # Issue 22 (checks): a held decision's missing rationale names the gate and the rule.
    require_rationale_for_sign_off(
        session,
        referral_id=referral_id,
        decision=decision,
        also=rationale_reasons(session, referral=referral, decision=decision.decision),
    )
    terms = decision_terms(
        session,
        referral=referral,
        decision=decision,
        band=score.band if score is not None else None,
        actor=actor,
    )
    try:
        row = record_decision(
            session,
            referral_id=referral_id,
            decision=str(decision.decision),
            decided_at=utcnow(),
            agreement=str(terms.agreement) if terms.agreement is not None else None,
            reason_codes=list(decision.reason_codes),
            rationale=decision.rationale or None,
            decided_by=actor,
            priority=str(terms.priority) if terms.priority is not None else None,
            priority_before_band=terms.priority_before_band,
        )
    except ReferralNotFound:
        raise not_found("referral", referral_id) from None
    except ReferralAlreadyDecided:
        raise Conflict(
            "already_decided",
            f"referral {referral_id!r} already has a decision; a manager can reopen it",
        ) from None
    # Issue 22 (checks): a closing decision that skipped the checks waits for a manager.
    sign_off = hold_for_sign_off(
        session, referral_id=referral_id, decision=decision, decision_id=row.id, actor=actor
    )
    if sign_off is None:
        remove_queue_entry(session, referral_id=referral_id)
    band = score.band if score is not None else None
    version = score.model_version if score is not None else None
    add_audit_event(
        session,
        actor=actor,
        action="referral.decided",
        entity_type="referral",
        entity_id=referral_id,
        model_version=version,
        payload={
            "decision_id": row.id,
            "decision": row.decision,
            "agreement": row.agreement,
            "priority": row.priority,
            "priority_before_band": row.priority_before_band,
            "rationale_chars": len(row.rationale or ""),
            "reason_codes": list(row.reason_codes),
            "band_at_decision": band,
            "score_id": score.id if score is not None else None,
        },
    )
    session.commit()
    return {
        **decision_out(row),
        "band_at_decision": band,
        "model_version_at_decision": version,
        "sign_off": sign_off,
    }


def reopen(session: Session, *, referral_id: str, reason: str, actor: str) -> dict[str, Any]:
    """Put a decided referral back in the queue where its latest score places it."""
    try:
        referral = reopen_referral(session, referral_id=referral_id)
    except ReferralNotFound:
        raise not_found("referral", referral_id) from None
    except ReferralNotDecided:
        raise Conflict("not_decided", f"referral {referral_id!r} is already open") from None
    child = get_child(session, child_id=referral.child_id)
    assert child is not None
    entry = enqueue(
        session,
        referral=referral,
        child=child,
        score=latest_score(session, referral_id=referral_id),
    )
    add_audit_event(
        session,
        actor=actor,
        action="referral.reopened",
        entity_type="referral",
        entity_id=referral_id,
        payload={"reason_chars": len(reason)},
    )
    session.commit()
    return queue_item(entry, now=utcnow(), model=None)


def dispute(
    session: Session,
    *,
    referral_id: str,
    record_id: str,
    reason: str,
    actor: str,
    model: LoadedModel | None,
) -> dict[str, Any]:
    """Store a dispute of a record; with a model, rescore without it and keep both scores."""
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        raise not_found("referral", referral_id)
    if not record_exists(session, record_id=record_id):
        raise invalid([{"field": "record_id", "reason": "no referral or event has this id"}])
    before = after = None
    version = None
    if model is not None:
        child = get_child(session, child_id=referral.child_id)
        assert child is not None
        result = what_if(
            session, model.scorer, referral_id=referral_id, disputed_record_ids=[record_id]
        )
        # Rules that read history see it with and without the disputed record.
        before, after = (
            summary(
                scored,
                apply_safety_rules(facts_of(referral, child, scored.values or None), scored.band),
                top=WHAT_IF_REASONS,
            )
            for scored in (result.before, result.after)
        )
        behind = record_id not in result.unknown_record_ids
        before |= {"outcome_words": result.before.outcome_words, "record_behind_score": behind}
        after |= {"outcome_words": result.after.outcome_words, "record_behind_score": behind}
        version = result.before.model_version
    row = add_dispute(
        session,
        referral_id=referral_id,
        record_id=record_id,
        reason=reason,
        disputed_by=actor,
        model_version=version,
        before=before,
        after=after,
    )
    add_audit_event(
        session,
        actor=actor,
        action="referral.disputed",
        entity_type="referral",
        entity_id=referral_id,
        model_version=version,
        payload={
            "dispute_id": row.id,
            "record_id": record_id,
            "probability_before": before["probability"] if before else None,
            "probability_after": after["probability"] if after else None,
            "band_before": before["band"] if before else None,
            "band_after": after["band"] if after else None,
        },
    )
    session.commit()
    return dispute_out(row)
