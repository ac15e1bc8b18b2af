"""Decisions, reopening, agency events and disputes through the API on SQLite."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from api_support import (  # noqa: F401  (fixtures)
    T0,
    _events,
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
from sqlalchemy.orm import Session

from explain.unknowns import what_the_model_does_not_know
from triage.queue import BANDS
from triage.store import (
    DisputeRow,
    EventRow,
    ScoreRow,
)

# --- decisions, reopening -------------------------------------------------------------------


def test_a_decision_closes_the_referral_and_a_second_gets_409(client: TestClient) -> None:
    referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
    url = f"/v1/referrals/{referral_id}/decisions"
    # A rationale follows the referral (closing one with an injury), not disagreement.
    unexplained = client.post(url, json={"decision": "no_further_action", "agreement": "agree"})
    assert unexplained.status_code == 422
    assert unexplained.json()["errors"][0]["field"] == "rationale"
    decided = client.post(url, json={"decision": "assessment", "agreement": "agree"})
    assert decided.status_code == 201
    assert decided.json()["band_at_decision"] in BANDS
    assert client.get("/v1/queue").json()["items"] == []
    again = client.post(url, json={"decision": "early_help", "agreement": "agree"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"

    reopened = client.post(f"/v1/referrals/{referral_id}/reopen", json={"reason": "new info"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "scored"
    assert [i["referral_id"] for i in client.get("/v1/queue").json()["items"]] == [referral_id]
    assert (
        client.post(f"/v1/referrals/{referral_id}/reopen", json={"reason": "x"}).status_code == 409
    )
    assert (
        client.post(url, json={"decision": "early_help", "agreement": "agree"}).status_code == 201
    )
    assert len(client.get(f"/v1/referrals/{referral_id}").json()["decisions"]) == 2


def test_unknown_ids_get_a_structured_404(client: TestClient) -> None:
    for response in (
        client.get("/v1/referrals/R-nope"),
        client.post("/v1/referrals/R-nope/decisions", json={"decision": "assessment",
                                                            "agreement": "agree"}),
        client.post("/v1/referrals/R-nope/disputes", json={"record_id": "E-1", "reason": "x"}),
    ):  # fmt: skip
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


# --- events, history, disputes --------------------------------------------------------------


def test_events_validate_as_a_batch_store_once_and_rescore(client: TestClient, db: Engine) -> None:
    referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
    events = _events()
    bad = copy.deepcopy(events)
    bad[1]["agency"] = "school"
    bad[0]["occurred_at"] = "yesterday"
    refused = client.post("/v1/events", json=bad)
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {"0.occurred_at", "1.kind"}
    assert count(db, EventRow) == 0
    stranger = client.post("/v1/events", json=_events(child="C-unknown")[1])
    assert stranger.status_code == 422
    assert stranger.json()["errors"][0]["field"] == "child_id"
    too_many = client.post("/v1/events", json=[events[0]] * 1001)
    assert too_many.status_code in (413, 422)

    stored = client.post("/v1/events", json=events)
    assert stored.status_code == 201, stored.text
    assert stored.json()["created"] == 2 and stored.json()["rescored"] == [referral_id]
    assert count(db, EventRow) == 2
    assert count(db, ScoreRow, ScoreRow.referral_id == referral_id) == 2
    resent = client.post("/v1/events", json=events)
    assert resent.status_code == 200
    assert resent.json()["duplicates"] == 2 and resent.json()["rescored"] == []
    assert count(db, EventRow) == 2

    detail = client.get(f"/v1/referrals/{referral_id}").json()
    event_ids = {i["event_id"] for i in stored.json()["items"]}
    linked = {t["record_id"]: t["signals"] for t in detail["timeline"] if t["kind"] == "event"}
    assert set(linked) == event_ids
    assert all(linked.values()), "each event shows the signals it fed"
    for reason in detail["score"]["reasons"]:
        for record_id in reason["record_ids"]:
            assert reason["signal"] in next(
                t["signals"] for t in detail["timeline"] if t["record_id"] == record_id
            )
    newest = max(datetime.fromisoformat(t["at"]) for t in detail["timeline"])
    assert datetime.fromisoformat(detail["history_through"]) == newest
    assert detail["model_does_not_know"] == what_the_model_does_not_know()


def test_a_dispute_runs_the_what_if_and_keeps_both_scores(client: TestClient, db: Engine) -> None:
    earlier = client.post("/v1/referrals", json=referral(received_at=T0 - timedelta(days=30)))
    later = client.post("/v1/referrals", json=referral())
    earlier_id, later_id = earlier.json()["referral_id"], later.json()["referral_id"]
    url = f"/v1/referrals/{later_id}/disputes"
    unknown = client.post(url, json={"record_id": "E-missing", "reason": "not ours"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "record_id"

    response = client.post(url, json={"record_id": earlier_id, "reason": "another child"})
    assert response.status_code == 201, response.text
    what_if = response.json()["what_if"]
    assert what_if["record_behind_score"] is True
    assert what_if["before"]["probability"] != what_if["after"]["probability"]
    assert what_if["probability_change"] == pytest.approx(
        what_if["after"]["probability"] - what_if["before"]["probability"]
    )
    before_ids = {r for reason in what_if["before"]["reasons"] for r in reason["record_ids"]}
    after_ids = {r for reason in what_if["after"]["reasons"] for r in reason["record_ids"]}
    assert earlier_id in before_ids and earlier_id not in after_ids
    assert count(db, DisputeRow) == 1
    assert count(db, ScoreRow, ScoreRow.referral_id == later_id) == 1, "the what-if is not a score"
    detail = client.get(f"/v1/referrals/{later_id}").json()
    assert detail["disputes"][0]["what_if"]["after"] == what_if["after"]


def test_recorded_at_is_checked_defaults_to_receipt_and_counts_only_once_known(
    client: TestClient, db: Engine
) -> None:
    referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
    police, health = _events()
    early = police | {"recorded_at": (T0 - timedelta(days=21)).isoformat()}
    ahead = police | {"recorded_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    for body, reason in ((early, "before occurred_at"), (ahead, "in the future")):
        refused = client.post("/v1/events", json=body)
        assert refused.status_code == 422
        ((field, said),) = [(e["field"], e["reason"]) for e in refused.json()["errors"]]
        assert field == "recorded_at" and reason in said, said
    assert count(db, EventRow) == 0

    # Without recorded_at the event is known from its receipt: too late for the referral.
    unshared = {k: v for k, v in health.items() if k != "recorded_at"}
    before = datetime.now(UTC)
    stored = client.post("/v1/events", json=unshared)
    assert stored.status_code == 201 and stored.json()["rescored"] == []
    with Session(db) as session:
        row = session.scalars(select(EventRow)).one()
        assert row.recorded_at is not None and before <= row.recorded_at <= datetime.now(UTC)
    detail = client.get(f"/v1/referrals/{referral_id}").json()
    (item,) = [t for t in detail["timeline"] if t["kind"] == "event"]
    assert item["signals"] == [], "shown in the history, but it fed no signal"
    # Shared before the referral (a late feed): it counts, and the referral is rescored.
    shared = client.post("/v1/events", json=police)
    assert shared.json()["rescored"] == [referral_id]
