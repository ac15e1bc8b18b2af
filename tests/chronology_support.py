"""A child whose history a social worker would read: agencies' records, repeats, a decision.

Shared by tests/api/test_pages_words.py and tests/api/test_browser_chronology.py. Every
record is before the newest referral, so its score reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api_support import T0, referral

CHILD, HOUSEHOLD = "C-7700", "H-770"
MISSED = [datetime(2026, 1, 5, 9, 30, tzinfo=UTC) + timedelta(days=19 * i) for i in range(5)]
"""Five missed health appointments, January-March 2026 (weeks apart: one run)."""
LATE_NIGHT = datetime(2026, 3, 30, 23, 30, tzinfo=UTC)
"""A school record at 23:30 UTC on 30 March 2026: 00:30 on the 31st, UK summer time."""
OFFENCE = datetime(2019, 3, 14, 21, 0, tzinfo=UTC)


def _event(n: int, agency: str, kind: str, when: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "source_system": f"{agency}-feed",
        "source_event_id": f"CHR-{n}",
        "agency": agency,
        "kind": kind,
        "occurred_at": when.isoformat(),
        "recorded_at": when.isoformat(),  # shared at once, so the score reads it
        "child_id": CHILD,
        "household_id": HOUSEHOLD,
    } | extra


def events() -> list[dict[str, Any]]:
    """The agencies' records about the child and the household."""
    out = [_event(i, "health", "missed_appointment", t) for i, t in enumerate(MISSED)]
    out += [
        _event(10, "police", "adult_violence_offence", OFFENCE, child_id=None),
        _event(11, "police", "domestic_abuse_incident", datetime(2026, 2, 20, 22, tzinfo=UTC),
               child_id=None, attributes={"outcome": "Words of advice; DASH risk: medium"}),
        _event(12, "school", "safeguarding_concern", LATE_NIGHT,
               attributes={"summary": "Bruise on the arm seen in PE"}),
    ]  # fmt: skip
    return out


def build(api: Any) -> dict[str, Any]:
    """Submit the child's referrals and records through ``api``; the ids the tests need."""
    first = referral(child_id=CHILD, household_id=HOUSEHOLD, received_at=T0 - timedelta(days=70))
    made = api.post("/v1/referrals", json=first)
    assert made.status_code == 201, made.text
    earlier = made.json()["referral_id"]
    decided = api.post(
        f"/v1/referrals/{earlier}/decisions",
        json={
            "decision": "no_further_action",
            "agreement": "agree",
            "reason_codes": [],
            "rationale": "Seen by the GP; no concerns found.",
        },
    )
    assert decided.status_code == 201, decided.text
    stored = api.post("/v1/events", json=events())
    assert stored.status_code == 201, stored.text
    ids = [item["event_id"] for item in stored.json()["items"]]
    newest = api.post(
        "/v1/referrals",
        json=referral(
            child_id=CHILD,
            household_id=HOUSEHOLD,
            received_at=T0,
            referrer={"type": "health", "relationship": "health_visitor", "referrer_id": "HV-1"},
            concerns=["neglect"],
        ),
    )
    assert newest.status_code == 201, newest.text
    return {
        "newest": newest.json()["referral_id"],
        "earlier": earlier,
        "missed": ids[:5],
        "offence": ids[5],
        "incident": ids[6],
        "school": ids[7],
    }
