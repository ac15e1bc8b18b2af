"""Limits on what intake accepts and what it answers: dates, characters, batch and error sizes,
and the record IDs a stored score keeps (issue 17, item 6)."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from api_support import (  # noqa: F401  (fixtures)
    admin,
    client,
    count,
    db,
    latest_score_of,
    make_client,
    referral,
    scorer,
    settings,
)
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine

from api.errors import MAX_BODY_BYTES, MAX_ERROR_TEXT, MAX_FIELD_ERRORS
from explain.reasons import MAX_REASON_RECORD_IDS
from service.intake import MAX_EVENTS
from triage.schema import ReferralIn
from triage.settings import Settings
from triage.store import ReferralRow, session_factory


def _errors(response: Any) -> dict[str, str]:
    return {e["field"]: e["reason"] for e in response.json()["errors"]}


# --- dates ----------------------------------------------------------------------------------


def test_a_date_of_birth_before_1900_is_refused_by_name(client: TestClient, db: Engine) -> None:
    body = referral(born=date(1899, 12, 31))
    refused = client.post("/v1/referrals", json=body)
    assert refused.status_code == 422
    assert "before 1900-01-01" in _errors(refused)["child.date_of_birth"]
    assert count(db, ReferralRow) == 0


def test_a_date_of_birth_after_receipt_is_refused_by_name(client: TestClient) -> None:
    received = datetime.now(UTC) - timedelta(days=30)
    refused = client.post(
        "/v1/referrals", json=referral(received_at=received, born=received.date() + timedelta(7))
    )
    assert refused.status_code == 422
    assert "received_at" in _errors(refused)


@pytest.fixture
def strict_client(settings: Settings, admin: dict[str, str]) -> Any:
    """An app with the shipped age limit on ``received_at`` (the suite relaxes it)."""
    from api.app import create_app

    strict = settings.model_copy(update={"max_referral_age_days": 365})
    app = create_app(strict, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app, raise_server_exceptions=False, headers=admin) as test_client:
        yield test_client


def test_received_at_older_than_the_limit_is_refused_by_name(
    strict_client: TestClient,
    db: Engine,
) -> None:
    now = datetime.now(UTC)
    stale = strict_client.post("/v1/referrals", json=referral(received_at=now - timedelta(400)))
    assert stale.status_code == 422
    assert "365 days" in _errors(stale)["received_at"]
    assert count(db, ReferralRow) == 0
    recent = strict_client.post("/v1/referrals", json=referral(received_at=now - timedelta(300)))
    assert recent.status_code == 201, recent.text


def test_received_at_in_the_future_beyond_the_skew_is_refused(client: TestClient) -> None:
    ahead = datetime.now(UTC) + timedelta(hours=1)
    refused = client.post("/v1/referrals", json=referral(received_at=ahead))
    assert refused.status_code == 422
    assert "future" in _errors(refused)["received_at"]


# --- characters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("child", "given_name"), "Sam\u202eoD"),  # right-to-left override
        (("child", "family_name"), "Doe\u2066x\u2069"),  # isolates
        (("child", "given_name"), "Sam\nDoe"),  # a line break in a name
        (("narrative",), "Uncle reports \u202ebruising."),
        (("narrative",), "Uncle reports\x00 bruising."),
        (("narrative",), "Uncle reports\x1b[31m bruising."),
    ],
)
def test_control_and_bidi_characters_are_refused_by_field(
    client: TestClient, db: Engine, path: tuple[str, ...], value: str
) -> None:
    body = referral()
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    refused = client.post("/v1/referrals", json=body)
    assert refused.status_code == 422
    reason = _errors(refused)[".".join(path)]
    assert "control or bidirectional formatting character" in reason
    assert count(db, ReferralRow) == 0


def test_plain_multi_line_narratives_and_accented_names_are_kept() -> None:
    body = referral(narrative="First line.\n\tSecond line, indented.")
    body["child"]["given_name"] = "Zoë-Ånne"
    stored = ReferralIn.model_validate(body)
    assert stored.narrative == "First line.\n\tSecond line, indented."
    assert stored.child.given_name == "Zoë-Ånne"


def test_event_attribute_values_refuse_bidi_characters() -> None:
    from service.intake import validate_events

    with pytest.raises(Exception) as refused:
        validate_events(
            {
                "source_system": "police-niche",
                "source_event_id": "DA-1",
                "agency": "police",
                "kind": "domestic_abuse_incident",
                "occurred_at": "2026-04-10T22:40:00Z",
                "household_id": "H-311",
                "attributes": {"note": "calm\u202e"},
            }
        )
    assert refused.value.errors[0]["field"] == "attributes"  # type: ignore[attr-defined]


def test_a_dispute_reason_refuses_bidi_characters() -> None:
    from service.replies import DisputeIn

    with pytest.raises(ValidationError) as refused:
        DisputeIn(record_id="E-1", reason="wrong family\u202e")
    assert refused.value.errors()[0]["loc"] == ("reason",)


# --- batch and error sizes ------------------------------------------------------------------


def _event(i: int) -> dict[str, Any]:
    """An event as a police feed sends it: about 300 bytes of JSON."""
    return {
        "source_system": "police-niche-records",
        "source_event_id": f"DA-2026-{i:08d}",
        "agency": "police",
        "kind": "domestic_abuse_incident",
        "occurred_at": "2026-04-10T22:40:00Z",
        "household_id": "H-311",
        "attributes": {"risk_level": "medium", "officer_unit": "public protection unit"},
    }


def test_a_full_batch_of_ordinary_events_fits_the_body_limit(client: TestClient) -> None:
    batch = [_event(i) for i in range(MAX_EVENTS)]
    assert len(json.dumps(batch).encode()) < MAX_BODY_BYTES
    stored = client.post("/v1/events", json=batch)
    assert stored.status_code == 201, stored.text[:500]
    assert stored.json()["created"] == MAX_EVENTS
    over = client.post("/v1/events", json=[_event(MAX_EVENTS + i) for i in range(MAX_EVENTS + 1)])
    assert over.status_code in (413, 422)


def test_a_small_bad_batch_gets_a_bounded_error(client: TestClient) -> None:
    bad = [{}] * MAX_EVENTS  # under 1 KiB, each item several errors
    body = json.dumps(bad).encode()
    assert len(body) < 1024
    refused = client.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 422
    got = refused.json()
    assert len(got["errors"]) == MAX_FIELD_ERRORS
    assert got["errors_omitted"] >= MAX_EVENTS * 4 - MAX_FIELD_ERRORS
    assert len(refused.content) < 16 * 1024


def test_many_field_errors_are_cut_and_counted(client: TestClient) -> None:
    bad = [{"agency": "police"}] * MAX_EVENTS  # five missing fields each
    refused = client.post("/v1/events", json=bad)
    assert refused.status_code == 422
    got = refused.json()
    assert len(got["errors"]) == MAX_FIELD_ERRORS
    assert got["errors_omitted"] > 0
    assert got["errors"][0]["field"].startswith("0.")
    assert len(refused.content) < 16 * 1024


def test_a_long_reason_is_cut(client: TestClient) -> None:
    long_key = "k" * 5000
    event = _event(1) | {"attributes": {long_key: "x"}}
    refused = client.post("/v1/events", json=event)
    assert refused.status_code == 422
    for error in refused.json()["errors"]:
        assert len(error["field"]) <= MAX_ERROR_TEXT and len(error["reason"]) <= MAX_ERROR_TEXT


# --- record ids behind a stored score -------------------------------------------------------


def test_a_stored_score_keeps_the_most_recent_record_ids_and_counts_the_rest(
    client: TestClient, db: Engine
) -> None:
    earlier = MAX_REASON_RECORD_IDS + 7
    start = datetime.now(UTC) - timedelta(days=200)
    ids = [
        client.post(
            "/v1/referrals", json=referral(child_id="C-many", received_at=start + timedelta(days=i))
        ).json()["referral_id"]
        for i in range(earlier)
    ]
    latest = client.post(
        "/v1/referrals", json=referral(child_id="C-many", received_at=start + timedelta(150))
    )
    assert latest.status_code == 201
    with session_factory(db)() as session:
        score = latest_score_of(session, latest.json()["referral_id"])
    assert score is not None
    assert all(len(r["record_ids"]) <= MAX_REASON_RECORD_IDS for r in score.reasons)
    every = [r for r in score.reasons if len(r["record_ids"]) + r["records_omitted"] == earlier]
    assert every, "some signal counts every earlier referral"
    for reason in every:
        assert reason["records_omitted"] == earlier - MAX_REASON_RECORD_IDS
        assert reason["record_ids"] == ids[-MAX_REASON_RECORD_IDS:]
    assert len(json.dumps(score.reasons)) < 64 * 1024
