"""A referral system reaches only what it sent: agencies bound to keys, receipt-only replies,
contradicting identities flagged for a person (issue 17, item 2)."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from access_helpers import PASSWORD, key_headers, user_headers
from api_support import (  # noqa: F401  (fixtures)
    T0,
    admin,
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
from typer.testing import CliRunner

from cli.app import app as cli
from service.replies import IntakeReceipt
from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings
from triage.store import ApiKeyRow, ChildRow, EventRow, ReferralRow, ScoreRow, session_factory
from triage.store.migrate import upgrade

FEED = REFERRAL_EXAMPLE["source_system"]
RECEIPT_FIELDS = set(IntakeReceipt.model_fields)
_serial = itertools.count()


def _event(agency: str, kind: str, *, days_before: int = 10, **subject: str) -> dict[str, Any]:
    return {
        "source_system": FEED,
        "source_event_id": f"EV-{next(_serial)}",
        "agency": agency,
        "kind": kind,
        "occurred_at": (T0 - timedelta(days=days_before)).isoformat(),
        # shared a day later, still before the referrals at T0 it feeds
        "recorded_at": (T0 - timedelta(days=days_before - 1)).isoformat(),
        **(subject or {"household_id": "H-311"}),
    }


# --- (a) a key reports only for its agencies ------------------------------------------------


def test_a_key_posts_events_only_for_the_agencies_it_is_bound_to(
    client: TestClient, settings: Settings, db: Engine
) -> None:
    police = key_headers(settings.database_url, FEED, agencies=["police"])
    ok = client.post("/v1/events", json=_event("police", "domestic_abuse_incident"), headers=police)
    assert ok.status_code == 201, ok.text

    mixed = [
        _event("police", "domestic_abuse_incident"),
        _event("social_care", "s47_enquiry"),
        _event("health", "ed_injury_attendance"),
    ]
    refused = client.post("/v1/events", json=mixed, headers=police)
    assert refused.status_code == 403
    got = refused.json()
    assert got["error"]["code"] == "forbidden"
    assert "health" in got["error"]["message"] and "social_care" in got["error"]["message"]
    assert {e["field"] for e in got["errors"]} == {"1.agency", "2.agency"}
    assert "'social_care'" in got["errors"][0]["reason"]
    assert count(db, EventRow) == 1, "nothing of a refused batch is stored"

    single = client.post("/v1/events", json=_event("school", "exclusion"), headers=police)
    assert single.status_code == 403
    assert single.json()["errors"] == [
        {"field": "agency", "reason": "this API key does not report for agency 'school'"}
    ]


def test_a_key_bound_to_no_agency_posts_no_events(client: TestClient, settings: Settings) -> None:
    referrals_only = key_headers(settings.database_url, FEED, agencies=[])
    refused = client.post(
        "/v1/events", json=_event("police", "domestic_abuse_incident"), headers=referrals_only
    )
    assert refused.status_code == 403
    assert "reports for no agency" in refused.json()["error"]["message"]
    body = referral(source_system=FEED)
    assert client.post("/v1/referrals", json=body, headers=referrals_only).status_code == 201


def test_keys_create_stores_the_agencies_and_refuses_unknown_ones(settings: Settings) -> None:
    env = {"TRIAGE_DATABASE_URL": settings.database_url}
    created = CliRunner().invoke(
        cli,
        ["keys", "create", "--name", "police feed", "--source-system", "police-x",
         "--agency", "police", "--agency", "social_care"],
        env=env,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "police, social_care" in created.output
    bad = CliRunner().invoke(
        cli,
        ["keys", "create", "--name", "x", "--source-system", "x", "--agency", "fire"],
        env=env,
    )
    assert bad.exit_code == 1 and "agencies must be some of" in bad.output
    engine = sa.create_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            keys = session.scalars(select(ApiKeyRow)).all()
    finally:
        engine.dispose()
    assert [k.agencies for k in keys] == [["police", "social_care"]]


def test_keys_made_before_the_migration_report_for_no_agency(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0005")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO api_keys (key_id, key_hash, name, source_system, scopes, active,"
                    " created_at) VALUES ('K-old', 'h', 'old', 'feed', '[]', 1, "
                    "'2026-01-01 00:00:00.000000')"
                )
            )
        upgrade(url)
        with session_factory(engine)() as session:
            assert session.get(ApiKeyRow, "K-old").agencies == []
    finally:
        engine.dispose()


# --- (b) replies carry the sender's own receipt ---------------------------------------------


def _history(client: TestClient) -> tuple[str, list[str]]:
    """Another system's referral and other agencies' events about child C-1042 (as an admin)."""
    other = client.post(
        "/v1/referrals",
        json=referral(source_system="school-safeguarding", received_at=T0 - timedelta(days=40)),
    )
    assert other.status_code == 201
    events = [
        _event("social_care", "s47_enquiry", days_before=30, child_id="C-1042"),
        _event("social_care", "cp_plan_start", days_before=25, child_id="C-1042"),
        _event("police", "domestic_abuse_incident", days_before=20),
    ]
    for e in events:
        e["source_system"] = "council-records"
    stored = client.post("/v1/events", json=events)
    assert stored.status_code == 201
    return other.json()["referral_id"], [item["event_id"] for item in stored.json()["items"]]


def test_a_key_s_intake_reply_is_its_own_receipt(client: TestClient, settings: Settings) -> None:
    other_referral, event_ids = _history(client)
    key = key_headers(settings.database_url, FEED, agencies=["police"])
    body = referral(source_system=FEED)
    reply = client.post("/v1/referrals", json=body, headers=key)
    assert reply.status_code == 201, reply.text
    got = reply.json()
    assert set(got) == RECEIPT_FIELDS
    assert got["status"] == "scored" and got["band"]
    for foreign in (other_referral, *event_ids):
        assert foreign not in reply.text
    # The same business key resent, and the Idempotency-Key replay: the receipt again.
    again = client.post("/v1/referrals", json=body, headers=key)
    assert again.status_code == 200 and set(again.json()) == RECEIPT_FIELDS
    keyed = referral(source_system=FEED)
    first = client.post("/v1/referrals", json=keyed, headers=key | {"Idempotency-Key": "k1"})
    replay = client.post("/v1/referrals", json=keyed, headers=key | {"Idempotency-Key": "k1"})
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert set(replay.json()) == RECEIPT_FIELDS
    # A practitioner's route still shows every reason and the records behind it.
    detail = client.get(f"/v1/referrals/{got['referral_id']}").json()
    behind = {r for reason in detail["score"]["reasons"] for r in reason["record_ids"]}
    assert set(event_ids) & behind


def test_a_key_s_events_reply_names_no_referral(
    client: TestClient, settings: Settings, db: Engine
) -> None:
    other_referral, _ = _history(client)
    key = key_headers(settings.database_url, FEED, agencies=["police"])
    reply = client.post(
        "/v1/events", json=[_event("police", "missing_episode", days_before=50)], headers=key
    )
    assert reply.status_code == 201, reply.text
    assert set(reply.json()) == {"created", "duplicates", "items"}
    assert other_referral not in reply.text
    # The event still counted: the other system's referral was rescored.
    assert count(db, ScoreRow, ScoreRow.referral_id == other_referral) >= 2
    admin_reply = client.post(
        "/v1/events", json=[_event("police", "missing_episode", days_before=45)]
    )
    assert other_referral in admin_reply.json()["rescored"]


# --- (c) contradicting identity details are flagged, not attached silently -----------------


def _page_client(app: Any, settings: Settings) -> TestClient:
    """A browser-like client signed in as a practitioner."""
    page = TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})
    username = f"identity-{next(_serial)}"
    user_headers(settings, "practitioner", username=username)
    form = page.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    signed_in = page.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert signed_in.status_code == 303
    return page


def test_contradicting_identity_is_stored_flagged_and_shown(
    client: TestClient, settings: Settings, db: Engine
) -> None:
    first = client.post("/v1/referrals", json=referral())
    assert first.status_code == 201
    same = referral()
    same["child"] |= {"given_name": "  sam ", "family_name": "DOE"}  # case and spacing only
    agreeing = client.post("/v1/referrals", json=same)
    assert agreeing.status_code == 201

    key = key_headers(settings.database_url, FEED)
    other = referral(source_system=FEED, born=date(2015, 1, 1))
    other["child"] |= {"given_name": "Alexis", "family_name": "Doe"}
    flagged = client.post("/v1/referrals", json=other, headers=key)
    assert flagged.status_code == 201, flagged.text
    assert set(flagged.json()) == RECEIPT_FIELDS, "the sender learns nothing about the child"
    flagged_id = flagged.json()["referral_id"]

    with session_factory(db)() as session:
        rows = {r.referral_id: r for r in session.scalars(select(ReferralRow))}
        child = session.get(ChildRow, "C-1042")
        assert child.given_name == "Sam" and child.date_of_birth == date(2014, 6, 1)
    assert rows[flagged_id].identity_mismatch == ["given_name", "date_of_birth"]
    assert rows[flagged_id].child_as_sent["given_name"] == "Alexis"
    assert rows[first.json()["referral_id"]].identity_mismatch is None
    assert rows[agreeing.json()["referral_id"]].identity_mismatch is None

    queue = {i["referral_id"]: i for i in client.get("/v1/queue").json()["items"]}
    assert queue[flagged_id]["identity_to_confirm"] is True
    assert queue[first.json()["referral_id"]]["identity_to_confirm"] is False
    detail = client.get(f"/v1/referrals/{flagged_id}").json()["referral"]
    assert detail["identity_mismatch"] == ["given_name", "date_of_birth"]
    assert detail["child_as_sent"]["date_of_birth"] == "2015-01-01"

    page = _page_client(client.app, settings)
    queue_page = page.get("/queue")
    assert queue_page.status_code == 200
    assert queue_page.text.count("Identity to confirm") == 1
    referral_page = page.get(f"/referrals/{flagged_id}")
    assert referral_page.status_code == 200
    assert "Identity to confirm" in referral_page.text and "Alexis" in referral_page.text
    calm = page.get(f"/referrals/{first.json()['referral_id']}")
    assert "Identity to confirm" not in calm.text


@pytest.mark.parametrize("field", ["given_name", "family_name"])
def test_each_name_part_is_compared(client: TestClient, db: Engine, field: str) -> None:
    assert client.post("/v1/referrals", json=referral()).status_code == 201
    body = referral()
    body["child"][field] = "Someone-Else"
    flagged = client.post("/v1/referrals", json=body).json()["referral_id"]
    with session_factory(db)() as session:
        assert session.get(ReferralRow, flagged).identity_mismatch == [field]
