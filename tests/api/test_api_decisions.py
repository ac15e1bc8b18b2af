"""POST /v1/referrals/{id}/decisions in the new shape (priority), older clients, precise 422s."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api_support import (  # noqa: F401  (fixtures)
    T0,
    admin,
    client,
    db,
    make_client,
    referral,
    scorer,
    settings,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from triage.queue import BANDS
from triage.store import AuditEventRow, DecisionRow
from triage.vocab import PRIORITY_BANDS

PRIORITY_OF = {band: str(priority) for priority, band in PRIORITY_BANDS.items()}


def _submit(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/referrals", json=referral(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


def _one_step(band: str, step: int) -> str:
    """The priority ``step`` bands away from ``band`` (kept inside the four)."""
    index = min(max(BANDS.index(band) + step, 0), len(BANDS) - 1)
    return PRIORITY_OF[BANDS[index]]


def test_agreement_is_derived_from_the_priority_and_stored(client: TestClient, db: Engine) -> None:
    stored = _submit(client)
    band = stored["band"]
    higher = _one_step(band, -1) if band != BANDS[0] else _one_step(band, 1)
    expected = "should_be_higher" if band != BANDS[0] else "should_be_lower"
    url = f"/v1/referrals/{stored['referral_id']}/decisions"
    reply = client.post(url, json={"decision": "assessment", "priority": higher})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["priority"], body["agreement"], body["band_at_decision"]) == (
        higher,
        expected,
        band,
    )
    assert body["priority_before_band"] is False
    with db.connect() as connection:
        row = connection.execute(
            select(DecisionRow.priority, DecisionRow.agreement).where(
                DecisionRow.referral_id == stored["referral_id"]
            )
        ).one()
        payload = connection.scalars(
            select(AuditEventRow.payload).where(AuditEventRow.action == "referral.decided")
        ).one()
    assert tuple(row) == (higher, expected)
    assert payload["priority"] == higher and payload["agreement"] == expected


def test_a_missing_or_contradicting_priority_is_a_precise_422(client: TestClient) -> None:
    stored = _submit(client)
    url = f"/v1/referrals/{stored['referral_id']}/decisions"
    missing = client.post(url, json={"decision": "assessment"})
    assert missing.status_code == 422
    error = missing.json()["errors"][0]
    assert error["field"] == "priority"
    assert "review_first, elevated, standard, lower" in error["reason"]
    unknown = client.post(url, json={"decision": "assessment", "priority": "high"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "priority"
    same = PRIORITY_OF[stored["band"]]
    clash = client.post(
        url, json={"decision": "assessment", "priority": same, "agreement": "should_be_lower"}
    )
    assert clash.status_code == 422
    assert clash.json()["errors"] == [
        {
            "field": "agreement",
            "reason": f"contradicts priority {same} against the band {stored['band']}, which "
            "gives agree; leave agreement out, it is derived",
        }
    ]
    agreeing = {"decision": "assessment", "priority": same, "agreement": "agree"}
    assert client.post(url, json=agreeing).status_code == 201


def test_an_older_client_sending_agreement_alone_still_works(client: TestClient) -> None:
    stored = _submit(client)
    url = f"/v1/referrals/{stored['referral_id']}/decisions"
    reply = client.post(url, json={"decision": "assessment", "agreement": "should_be_higher"})
    assert reply.status_code == 201, reply.text  # no rationale needed for disagreeing as such
    assert reply.json()["priority"] is None and reply.json()["agreement"] == "should_be_higher"


def test_closing_an_injury_referral_needs_a_rationale_even_when_agreeing(
    client: TestClient,
) -> None:
    stored = _submit(client)  # the example referral reports an injury
    url = f"/v1/referrals/{stored['referral_id']}/decisions"
    agreeing = {"decision": "no_further_action", "priority": PRIORITY_OF[stored["band"]]}
    refused = client.post(url, json=agreeing)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "field": "rationale",
            "reason": "required for no_further_action: the referral reports an injury",
        }
    ]
    explained = client.post(url, json=agreeing | {"rationale": "Seen by the GP; accidental."})
    assert explained.status_code == 201 and explained.json()["agreement"] == "agree"


def test_a_repeat_referral_without_an_injury_needs_a_rationale_to_close(
    client: TestClient,
) -> None:
    quiet = {"injury": {"reported": False, "sites": [], "photographed": False}}
    _submit(
        client, child_id="C-77", household_id="H-77", received_at=T0 - timedelta(days=30), **quiet
    )
    again = _submit(client, child_id="C-77", household_id="H-77", **quiet)
    url = f"/v1/referrals/{again['referral_id']}/decisions"
    refused = client.post(url, json={"decision": "information_advice", "priority": "lower"})
    assert refused.status_code == 422
    assert "earlier referral about this child" in refused.json()["errors"][0]["reason"]
    other = _submit(client, child_id="C-78", household_id="H-78", **quiet)
    fine = client.post(
        f"/v1/referrals/{other['referral_id']}/decisions",
        json={"decision": "no_further_action", "priority": "lower"},
    )
    assert fine.status_code == 201, fine.text
