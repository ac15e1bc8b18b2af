"""A resend of a stored business key with other content is refused by name, never dropped
silently (issue 17, item 3)."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import copy
from datetime import timedelta

from access_helpers import key_headers
from api_support import (  # noqa: F401  (fixtures)
    T0,
    admin,
    audit_actions,
    client,
    count,
    db,
    make_client,
    referral,
    scorer,
    settings,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from triage.settings import Settings
from triage.store import AuditEventRow, ReferralRow, session_factory


def test_an_identical_resend_answers_200_with_the_stored_referral(
    client: TestClient, db: Engine
) -> None:
    body = referral(concerns=["physical_abuse", "neglect"])
    first = client.post("/v1/referrals", json=body)
    assert first.status_code == 201
    reordered = copy.deepcopy(body)
    reordered["concerns"] = ["neglect", "physical_abuse"]  # order carries no meaning
    again = client.post("/v1/referrals", json=reordered)
    assert again.status_code == 200, again.text
    assert again.json()["referral_id"] == first.json()["referral_id"]
    assert count(db, ReferralRow) == 1


def test_a_resend_with_other_content_gets_409_naming_the_fields(
    client: TestClient, db: Engine
) -> None:
    body = referral()
    first = client.post("/v1/referrals", json=body)
    assert first.status_code == 201
    referral_id = first.json()["referral_id"]
    corrected = copy.deepcopy(body)
    corrected["narrative"] = "Corrected: the bruising was on the arm."
    corrected["concerns"] = ["physical_abuse", "neglect"]
    corrected["injury"]["sites"] = ["limbs"]
    corrected["received_at"] = (T0 + timedelta(hours=1)).isoformat()
    refused = client.post("/v1/referrals", json=corrected)
    assert refused.status_code == 409, refused.text
    got = refused.json()
    assert got["error"]["code"] == "conflict"
    assert referral_id in got["error"]["message"] and "not applied" in got["error"]["message"]
    assert {e["field"] for e in got["errors"]} == {
        "narrative", "concerns", "injury.sites", "received_at",
    }  # fmt: skip
    with session_factory(db)() as session:
        stored = session.get(ReferralRow, referral_id)
        assert stored.narrative == body["narrative"]
        assert stored.concerns == ["physical_abuse"]
        refusal = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "referral.resend_refused")
        ).one()
    assert refusal.entity_id == referral_id
    assert set(refusal.payload["fields"]) == {e["field"] for e in got["errors"]}
    assert "Corrected" not in str(refusal.payload), "no free text in the audit log"
    assert count(db, ReferralRow) == 1


def test_a_resend_with_other_child_details_gets_409(client: TestClient) -> None:
    body = referral()
    assert client.post("/v1/referrals", json=body).status_code == 201
    other = copy.deepcopy(body)
    other["child"]["given_name"] = "Samuel"
    other["child"]["sex"] = "unknown"
    refused = client.post("/v1/referrals", json=other)
    assert refused.status_code == 409
    assert {e["field"] for e in refused.json()["errors"]} == {"child.given_name", "child.sex"}


def test_a_key_s_resend_with_a_correction_gets_409_and_a_retry_of_it_too(
    client: TestClient, settings: Settings, db: Engine
) -> None:
    key = key_headers(settings.database_url, referral()["source_system"])
    body = referral()
    first = client.post("/v1/referrals", json=body, headers=key | {"Idempotency-Key": "a"})
    assert first.status_code == 201
    corrected = copy.deepcopy(body)
    corrected["referrer"]["relationship"] = "neighbour"
    for _ in range(2):  # the refusal is not stored against the key: a retry is refused again
        refused = client.post(
            "/v1/referrals", json=corrected, headers=key | {"Idempotency-Key": "b"}
        )
        assert refused.status_code == 409
        assert [e["field"] for e in refused.json()["errors"]] == ["referrer.relationship"]
    assert audit_actions(db, first.json()["referral_id"]).count("referral.resend_refused") == 2
