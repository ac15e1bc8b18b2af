"""The summary card at the top of a referral page: what a practitioner needs before reading on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.child_groups import newer_records
from triage.queue import age_in_months
from triage.store.newer import Received
from triage.store.queue import open_entries_of_children, queue_key


def referral_summary(session: Session, *, detail: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The child, age, concerns, due time, the child's other open referrals, flags, and how
    many records about the child the score leaves out, for the referral in ``detail``."""
    referral, score = detail["referral"], detail["score"]
    child = referral.get("child")
    received_at: datetime = referral["received_at"]
    entries = open_entries_of_children(session, child_ids=[child["child_id"]] if child else [])
    mine = next((e for e in entries if e.referral_id == referral["referral_id"]), None)
    others = [
        {
            "referral_id": entry.referral_id,
            "band": entry.band,
            "received_at": entry.received_at,
            "concerns": list(entry.concerns),
            "ahead": mine is not None and queue_key(entry) < queue_key(mine),
        }
        for entry in entries
        if entry.referral_id != referral["referral_id"]
    ]
    newer = 0
    if child is not None:
        here = Received(referral["referral_id"], child["child_id"], received_at)
        newer = newer_records(session, entries=[here])[here.referral_id]
    is_open = referral["status"] == "open"
    return {
        "child_name": _name(child),
        "child_id": child["child_id"] if child else None,
        "age_months": age_in_months(child["date_of_birth"], received_at.date()) if child else None,
        "concerns": list(referral["concerns"]),
        "injury": referral["injury"],
        "received_at": received_at,
        "due_by": referral["due_by"],
        "overdue": is_open and now > referral["due_by"],
        "open": is_open,
        "band": score.get("band") if score.get("status") == "scored" else None,
        "flags": score.get("flags", []),
        "other_open": others,
        "newer_records": newer,
        "identity_to_confirm": bool(referral.get("identity_mismatch")),
    }


def _name(child: dict[str, Any] | None) -> str:
    """The child's name as the page shows it (the id when no name is recorded)."""
    if child is None:
        return "not known"
    name = " ".join(part for part in (child.get("given_name"), child.get("family_name")) if part)
    return name or str(child["child_id"])
