"""The intake route end to end on SQLite: one store and one score per referral, validation,
idempotency, scoring failures and time-outs, and the single write transaction."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import copy
import time
from datetime import date, timedelta
from typing import Any

import pytest
from api_support import (  # noqa: F401  (fixtures)
    T0,
    BrokenScorer,
    ClientFactory,
    Switch,
    _events,
    admin,
    audit_actions,
    client,
    count,
    db,
    latest_score_of,
    make_client,
    referral,
    scorer,
    settings,
    stored_reply,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from api.app import create_app
from explain.referral import explain_referral
from models.dataset import DEFAULT_OUTCOME, OUTCOMES
from models.scorer import Scorer
from service import intake
from service.champion import LoadedModel
from service.scoring import try_score
from triage.queue import BANDS
from triage.settings import Settings
from triage.store import (
    ChildRow,
    HouseholdRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
    add_event,
    session_factory,
)
from triage.store.auditlog import verify_chain

# --- intake ---------------------------------------------------------------------------------


def test_intake_stores_once_scores_and_audits(client: TestClient, db: Engine) -> None:
    body = referral()
    response = client.post("/v1/referrals", json=body)
    assert response.status_code == 201, response.text
    got = response.json()
    assert got["status"] == "scored" and got["band"] in BANDS
    assert got["probability_low"] <= got["probability"] <= got["probability_high"]
    assert got["model_version"] == "test-model/1"
    assert got["outcome_words"] == OUTCOMES[DEFAULT_OUTCOME]
    assert len(got["reasons"]) == 5
    assert {"signal", "sentence", "direction", "record_ids"} <= set(got["reasons"][0])
    assert got["due_by"] == "2026-04-14T09:00:00Z"
    key = (ReferralRow.source_system == body["source_system"],
           ReferralRow.source_referral_id == body["source_referral_id"])  # fmt: skip
    assert count(db, ReferralRow, *key) == 1
    assert count(db, ScoreRow, ScoreRow.referral_id == got["referral_id"]) == 1
    assert audit_actions(db, got["referral_id"]) == ["referral.received", "referral.scored"]


def test_validation_errors_name_each_field_and_store_nothing(
    client: TestClient, db: Engine
) -> None:
    body = referral()
    body["child"]["sex"] = "dragon"
    body["concerns"] = []
    body["injury"] = {"reported": False, "sites": ["limbs"]}
    body["surprise"] = 1
    response = client.post("/v1/referrals", json=body)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"child.sex", "concerns", "injury.sites", "surprise"}
    assert response.json()["error"]["code"] == "validation_error"
    assert count(db, ReferralRow) == 0
    broken = client.post(
        "/v1/referrals", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["errors"]


def test_bodies_over_64_kib_get_413_by_length_and_by_bytes(client: TestClient) -> None:
    big = referral(narrative="x" * 70_000)
    assert client.post("/v1/referrals", json=big).status_code == 413
    chunks = (b"[" + b" " * 10_000 for _ in range(10))  # streamed: no Content-Length
    response = client.post(
        "/v1/events", content=chunks, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_idempotency_key_replays_and_refuses_another_body(client: TestClient, db: Engine) -> None:
    body = referral()
    headers = {"Idempotency-Key": "retry-7"}
    first = client.post("/v1/referrals", json=body, headers=headers)
    again = client.post("/v1/referrals", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(db, ReferralRow) == 1
    other = client.post("/v1/referrals", json=referral(), headers=headers)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert count(db, ReferralRow) == 1


def test_business_key_resend_returns_the_stored_referral(client: TestClient, db: Engine) -> None:
    body = referral()
    first = client.post("/v1/referrals", json=body)
    resend = client.post("/v1/referrals", json=body)  # other content: tests/test_resend_conflicts
    assert (first.status_code, resend.status_code) == (201, 200)
    assert resend.json()["referral_id"] == first.json()["referral_id"]
    assert resend.json()["probability"] == first.json()["probability"]
    assert count(db, ReferralRow) == 1


def test_unscored_without_a_model_then_scored_on_reload(
    make_client: ClientFactory, scorer: Scorer, db: Engine
) -> None:
    switch = Switch(None)
    client = make_client(switch)
    assert client.get("/v1/model").json()["status"] == "no_model"
    created = client.post("/v1/referrals", json=referral())
    assert created.status_code == 201
    assert created.json()["status"] == "unscored" and created.json()["band"] is None
    referral_id = created.json()["referral_id"]
    assert count(db, ReferralRow) == 1 and count(db, ScoreRow) == 0
    queue = client.get("/v1/queue").json()["items"]
    assert [(i["referral_id"], i["status"]) for i in queue] == [(referral_id, "unscored")]

    switch.scorer = scorer
    reloaded = client.post("/v1/admin/reload-model").json()
    assert reloaded["reloaded"] and reloaded["scored"] == 1 and reloaded["remaining"] == 0
    assert reloaded["model"]["version"] == "test-model/1"
    detail = client.get(f"/v1/referrals/{referral_id}").json()
    assert detail["score"]["status"] == "scored"
    assert len(detail["score"]["reasons"]) == len(scorer.signals)


def test_a_scoring_failure_still_stores_the_referral_unscored(
    make_client: ClientFactory, scorer: Scorer, db: Engine
) -> None:
    broken = copy.copy(scorer)
    broken.__class__ = BrokenScorer
    client = make_client(Switch(broken))
    response = client.post("/v1/referrals", json=referral())
    assert response.status_code == 201 and response.json()["status"] == "unscored"
    assert count(db, ReferralRow) == 1 and count(db, ScoreRow) == 0


class SlowScorer(Scorer):
    def score_matrix(self, X: Any, *, with_range: bool = True) -> Any:
        time.sleep(1.0)
        return super().score_matrix(X, with_range=with_range)


def test_a_slow_intake_times_out_with_503_while_the_service_answers_and_still_stores_it(
    settings: Settings, scorer: Scorer, admin: dict[str, str], db: Engine
) -> None:
    # The intake route is async: its store and scoring must run off the event loop, or the
    # timeout could not answer and /healthz would wait for them.
    slow = copy.copy(scorer)
    slow.__class__ = SlowScorer
    quick = settings.model_copy(update={"request_timeout_seconds": 0.3})
    app = create_app(quick, scorer_loader=Switch(slow), score_backlog_on_start=False)
    body, key = referral(), {"Idempotency-Key": "k-slow"}
    with TestClient(app, raise_server_exceptions=False, headers=admin) as client:
        started = time.perf_counter()
        response = client.post("/v1/referrals", json=body, headers=key)
        assert response.status_code == 503 and response.json()["error"]["code"] == "timeout"
        assert time.perf_counter() - started < 0.9
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 30
        while count(db, ScoreRow) == 0:  # the abandoned intake runs to its end
            assert time.monotonic() < deadline
            time.sleep(0.05)
        retry = client.post("/v1/referrals", json=body, headers=key)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["status"] == "scored"
    assert count(db, ReferralRow) == 1 and count(db, ScoreRow) == 1


def test_intake_is_one_write_transaction_with_the_score_and_the_key_reply(
    client: TestClient, db: Engine
) -> None:
    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    writes: list[str] = []
    listener = lambda connection: writes.append("begin")  # noqa: E731
    event.listen(engine, "begin", listener)
    try:
        body = referral()
        first = client.post("/v1/referrals", json=body, headers={"Idempotency-Key": "k-1tx"})
    finally:
        event.remove(engine, "begin", listener)
    assert first.status_code == 201 and first.json()["status"] == "scored"
    # The referral, its audit events, score, queue entry and key with the reply: one commit.
    assert len(writes) == 1
    assert stored_reply(db, "k-1tx") == (201, first.json())
    referral_id = first.json()["referral_id"]
    assert audit_actions(db, referral_id) == ["referral.received", "referral.scored"]
    with session_factory(db)() as session:
        assert verify_chain(session).ok  # the second event chains on the first's hash
    with db.connect() as connection:
        entry = connection.execute(
            select(QueueEntryRow.score_id, QueueEntryRow.band).where(
                QueueEntryRow.referral_id == referral_id
            )
        ).one()
    assert entry.band == first.json()["band"] and entry.score_id is not None


def test_the_intake_score_is_the_stored_referral_s_score(
    client: TestClient, scorer: Scorer, db: Engine
) -> None:
    # Features come from the request before the referral is stored; they must be the ones the
    # stored referral gives (the referral view and the what-if rebuild them from the store).
    client.post("/v1/events", json=_events())
    client.post("/v1/referrals", json=referral(received_at=T0 - timedelta(days=5)))
    reply = client.post("/v1/referrals", json=referral()).json()
    with session_factory(db)() as session:
        again = explain_referral(session, scorer, referral_id=reply["referral_id"])
    assert reply["probability"] == pytest.approx(again.probability, abs=1e-12)
    assert reply["reasons"] == [r.as_dict() for r in again.top(len(reply["reasons"]))]
    assert any(r["record_ids"] for r in reply["reasons"]), "the history counted"


def test_history_committed_while_an_intake_scores_is_in_its_score(
    client: TestClient, scorer: Scorer, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/v1/referrals", json=referral(received_at=T0 - timedelta(days=30)))
    event_id = "E-meanwhile"
    ensure_child = intake._ensure_child

    def event_lands_first(session: Any, body: Any) -> date:
        # Another request commits an event about the child after this intake computed its
        # score from a snapshot, and before its write transaction begins.
        with session_factory(db)() as other:
            add_event(
                other,
                event={"event_id": event_id, "source_system": "health-ed",
                       "source_event_id": "ED-meanwhile", "child_id": "C-1042",
                       "household_id": None, "occurred_at": T0 - timedelta(days=2),
                       "agency": "health", "kind": "ed_injury_attendance", "attributes": {},
                       "synthetic": False},
            )  # fmt: skip
            other.commit()
        return ensure_child(session, body)

    monkeypatch.setattr(intake, "_ensure_child", event_lands_first)
    reply = client.post("/v1/referrals", json=referral()).json()
    assert reply["status"] == "scored"
    with session_factory(db)() as session:
        score = latest_score_of(session, reply["referral_id"])
        again = explain_referral(session, scorer, referral_id=reply["referral_id"])
    assert any(event_id in reason["record_ids"] for reason in score.reasons)
    assert reply["probability"] == pytest.approx(again.probability, abs=1e-12)


@pytest.mark.parametrize(
    "failing", ["plan_score", "store_score"], ids=["working-it-out", "storing-it"]
)
def test_a_failure_with_the_score_still_commits_the_referral_unscored(
    client: TestClient, db: Engine, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def fails(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{failing} failed")

    monkeypatch.setattr(intake, failing, fails)
    reply = client.post("/v1/referrals", json=referral())
    assert reply.status_code == 201 and reply.json()["status"] == "unscored"
    referral_id = reply.json()["referral_id"]
    assert audit_actions(db, referral_id) == ["referral.received"]
    assert count(db, ReferralRow) == 1 and count(db, ScoreRow) == 0
    assert count(db, QueueEntryRow, QueueEntryRow.referral_id == referral_id) == 1


def test_a_retry_that_misses_the_first_request_s_key_replays_its_reply(
    client: TestClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, headers = referral(), {"Idempotency-Key": "k-race"}
    first = client.post("/v1/referrals", json=body, headers=headers)
    assert first.status_code == 201
    # The retry's snapshot predates the first request's commit (another worker, or
    # PostgreSQL): it finds the key only when it meets the stored referral.
    monkeypatch.setattr(intake, "_replay", lambda *args, **kwargs: None)
    retry = client.post("/v1/referrals", json=body, headers=headers)
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert stored_reply(db, "k-race") == (201, first.json())
    assert count(db, ReferralRow) == 1


def test_a_history_cut_at_max_records_is_scored_again_in_the_transaction(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/v1/referrals", json=referral(received_at=T0 - timedelta(days=30)))
    assert client.post("/v1/events", json=_events()).status_code == 201
    monkeypatch.setattr(intake, "MAX_RECORDS", 1)  # the household's history reaches it
    calls: list[Any] = []
    explain = intake._explain

    def counted(session: Any, *args: Any) -> Any:
        calls.append(session)
        return explain(session, *args)

    monkeypatch.setattr(intake, "_explain", counted)
    reply = client.post("/v1/referrals", json=referral())
    assert reply.json()["status"] == "scored"
    assert len(calls) == 2  # the snapshot's count cannot tell whether a record came since


def test_a_scoring_failure_with_a_key_replays_the_unscored_reply(
    make_client: ClientFactory, scorer: Scorer, db: Engine
) -> None:
    broken = copy.copy(scorer)
    broken.__class__ = BrokenScorer
    client = make_client(Switch(broken))
    body, headers = referral(), {"Idempotency-Key": "k-broken"}
    first = client.post("/v1/referrals", json=body, headers=headers)
    again = client.post("/v1/referrals", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["status"] == "unscored" and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(db, ReferralRow) == 1 and count(db, ScoreRow) == 0


def test_a_new_child_is_stored_as_sent_then_kept_as_stored(
    make_client: ClientFactory, db: Engine
) -> None:
    client = make_client(Switch(None))
    first = referral(child_id="C-new", household_id="H-new", born=date(2014, 6, 1))
    assert client.post("/v1/referrals", json=first).status_code == 201
    # A later referral names the child as a baby in another household: the stored child wins
    # (no infant flag), and the referral's new household is stored for it.
    baby = (T0 - timedelta(days=60)).date()
    later = client.post(
        "/v1/referrals", json=referral(child_id="C-new", household_id="H-moved", born=baby)
    )
    assert later.status_code == 201 and later.json()["flags"] == []
    with db.connect() as connection:
        born = connection.scalar(select(ChildRow.date_of_birth).where(ChildRow.child_id == "C-new"))
        households = set(connection.scalars(select(HouseholdRow.household_id)))
        moved = connection.scalar(
            select(ReferralRow.household_id).where(
                ReferralRow.referral_id == later.json()["referral_id"]
            )
        )
    assert born == date(2014, 6, 1)
    assert households == {"H-new", "H-moved"} and moved == "H-moved"


def test_scoring_a_referral_decided_meanwhile_stores_the_score_but_does_not_requeue_it(
    make_client: ClientFactory, scorer: Scorer, db: Engine
) -> None:
    client = make_client(Switch(None))
    referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
    decided = client.post(
        f"/v1/referrals/{referral_id}/decisions",
        json={"decision": "assessment", "agreement": "agree"},
    )
    assert decided.status_code == 201
    state = client.app.state.service  # type: ignore[attr-defined]
    scored = try_score(
        state.sessions,
        LoadedModel(scorer=scorer),
        referral_id=referral_id,
        actor="test",
        trigger="intake",
        read_sessions=state.read_sessions,
    )
    assert scored is not None and scored.score.id is not None
    assert count(db, ScoreRow, ScoreRow.referral_id == referral_id) == 1
    assert count(db, QueueEntryRow, QueueEntryRow.referral_id == referral_id) == 0


def test_a_key_kept_before_household_members_existed_still_matches_its_retry() -> None:
    from triage.schema import AgencyEventIn, ReferralIn

    sent = ReferralIn.model_validate(referral()).model_dump(mode="json")
    kept_before = {k: v for k, v in sent.items() if k != "household_members"}
    # Issue 21's child details (NHS number, postcode, school) left out are not in it either.
    later = ("nhs_number", "postcode", "school")
    kept_before["child"] = {k: v for k, v in sent["child"].items() if k not in later}
    assert intake._as_first_kept(sent) == kept_before
    detailed = sent | {"child": sent["child"] | {"postcode": "LS1 4AP"}}
    assert intake._as_first_kept(detailed)["child"]["postcode"] == "LS1 4AP"
    listed = kept_before | {"household_members": [{"given_name": "Lee", "role": "parent"}]}
    assert intake._as_first_kept(listed) == listed, "a listed member is part of the request"
    event = AgencyEventIn.model_validate(
        {
            "source_system": "police-feed",
            "source_event_id": "E-1",
            "agency": "police",
            "kind": "domestic_abuse_incident",
            "occurred_at": "2026-04-01T10:00:00Z",
            "household_id": "H-311",
        }
    ).model_dump(mode="json")
    assert "person_id" in event and "person_id" not in intake._as_first_kept(event)
    assert "recorded_at" in event and "recorded_at" not in intake._as_first_kept(event)
    assert "recorded_at" in intake._as_first_kept(event | {"recorded_at": "2026-04-02T10:00:00Z"})
