"""One child, several open referrals: what the queue and the referral page show about them.

Each queue item learns the child's other open referrals (and whether each is ahead of it in
the queue) and how many records about the child its score leaves out; the queue page then
groups a page's items by child, at the place of the child's highest referral on the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from triage.store.newer import Received, records_known_after
from triage.store.queue import open_entries_of_children, queue_key
from triage.store.tables import QueueEntryRow


def other_open_referrals(
    session: Session, *, entries: Sequence[QueueEntryRow]
) -> dict[str, list[dict[str, Any]]]:
    """For each entry, the child's other open referrals in queue order (``ahead``: above it)."""
    by_child: dict[str, list[QueueEntryRow]] = {}
    for row in open_entries_of_children(session, child_ids=[e.child_id for e in entries]):
        by_child.setdefault(row.child_id, []).append(row)
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        mine = queue_key(entry)
        out[entry.referral_id] = [
            {
                "referral_id": other.referral_id,
                "band": other.band,
                "received_at": other.received_at,
                "concerns": list(other.concerns),
                "ahead": queue_key(other) < mine,
            }
            for other in by_child.get(entry.child_id, [])
            if other.referral_id != entry.referral_id
        ]
    return out


def newer_records(session: Session, *, entries: Sequence[Received]) -> dict[str, int]:
    """For each referral, how many records about its child its score does not include."""
    return records_known_after(session, referrals=entries)


def received(entry: QueueEntryRow) -> Received:
    """A queue entry as ``newer_records`` takes it."""
    return Received(entry.referral_id, entry.child_id, entry.received_at)


def group_by_child(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A page of queue items as groups, one per child, each where its first item was.

    A group says how many of the child's open referrals are elsewhere in the queue: ahead of
    the page (the child's highest referral is on an earlier page) or after it.
    """
    groups: dict[str, dict[str, Any]] = {}
    for item in items:
        group = groups.get(item["child_id"])
        if group is None:
            others = item.get("other_open_referrals", [])
            group = groups[item["child_id"]] = {
                "child_id": item["child_id"],
                "age_months": item["age_months"],
                "items": [],
                "open_total": 1 + len(others),
                "ahead_elsewhere": [o for o in others if o["ahead"]],
            }
        group["items"].append(item)
    on_page = {item["referral_id"] for item in items}
    for group in groups.values():
        group["later_elsewhere"] = (
            group["open_total"] - len(group["items"]) - len(group["ahead_elsewhere"])
        )
        group["ahead_elsewhere"] = [
            o for o in group["ahead_elsewhere"] if o["referral_id"] not in on_page
        ]
    return list(groups.values())
