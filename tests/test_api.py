"""The service API end to end on SQLite: intake, events, queue, decisions, disputes, model."""

from __future__ import annotations

import copy
import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from access_helpers import user_headers
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select

from api import intake, scoring
from api.app import create_app
from api.champion import LoadedModel, ModelHolder, champion_probe
from api.scoring import try_score
from explain.referral import explain_referral
from explain.unknowns import what_the_model_does_not_know
from models.dataset import DEFAULT_OUTCOME, OUTCOMES, load_training_data
from models.scorer import Scorer
from models.train import fit_scorer
from triage.queue import BANDS
from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings
from triage.store import (
    AuditEventRow,
    ChildRow,
    DisputeRow,
    EventRow,
    HouseholdRow,
    IdempotencyKeyRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
    add_child,
    add_event,
    add_household,
    add_referral,
    add_score,
    make_engine,
    record_decision,
    session_factory,
)
from triage.store.auditlog import verify_chain
from triage.store.migrate import upgrade
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

T0 = datetime(2026, 4, 13, 9, 0, tzinfo=UTC)  # a Monday
_serial = itertools.count()


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    """A scorecard fitted on a small synthetic world, as test_models fits one (seconds)."""
    directory = tmp_path_factory.mktemp("world")
    write_extract(generate_world(WorldParams(n_referrals=3_000, seed=11)), directory)
    return fit_scorer(load_training_data(directory), n_boot=2, version="test-model/1")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh, migrated SQLite database."""
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade(url)
    return Settings(
        var_dir=tmp_path, database_url=url, mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db"
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """An engine for checking what the service stored."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


class Switch:
    """A scorer loader the test turns on and off."""

    def __init__(self, scorer: Scorer | None) -> None:
        self.scorer = scorer

    def __call__(self) -> Scorer | None:
        return self.scorer


ClientFactory = Callable[[Any], TestClient]


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    """Headers for an admin, who may use every route (access itself: tests/test_access.py)."""
    return user_headers(settings, "admin")


@pytest.fixture
def make_client(settings: Settings, admin: dict[str, str]) -> Iterator[ClientFactory]:
    """``make_client(loader)`` starts the app (lifespan included), signed in as an admin."""
    clients: list[TestClient] = []

    def make(loader: Any) -> TestClient:
        app = create_app(settings, scorer_loader=loader, score_backlog_on_start=False)
        client = TestClient(app, raise_server_exceptions=False, headers=admin)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory, scorer: Scorer) -> TestClient:
    """A client on an app with the test model loaded."""
    return make_client(Switch(scorer))


def referral(
    *,
    child_id: str = "C-1042",
    household_id: str = "H-311",
    received_at: datetime = T0,
    born: date = date(2014, 6, 1),
    **overrides: Any,
) -> dict[str, Any]:
    """A valid referral body with a fresh business key.

    The injury is not photographed, so no safety rule fires unless a test asks for one (the
    binding example, a relative's photographs, is reviewed first).
    """
    body = copy.deepcopy(REFERRAL_EXAMPLE)
    body["injury"]["photographed"] = False
    body["source_referral_id"] = f"T-{next(_serial)}"
    body["received_at"] = received_at.isoformat()
    body["child"] |= {
        "child_id": child_id,
        "household_id": household_id,
        "date_of_birth": born.isoformat(),
    }
    body.update(overrides)
    return body


def count(db: Engine, table: type, *where: Any) -> int:
    with db.connect() as connection:
        return connection.execute(select(func.count()).select_from(table).where(*where)).scalar()


def stored_reply(db: Engine, key: str) -> tuple[int, Any]:
    """The status and body an Idempotency-Key replays."""
    with db.connect() as connection:
        stored = connection.execute(
            select(IdempotencyKeyRow.status_code, IdempotencyKeyRow.response).where(
                IdempotencyKeyRow.key == key
            )
        ).one()
    return stored.status_code, stored.response


def latest_score_of(session: Any, referral_id: str) -> ScoreRow:
    return session.scalars(
        select(ScoreRow).where(ScoreRow.referral_id == referral_id).order_by(ScoreRow.id.desc())
    ).first()


def audit_actions(db: Engine, entity_id: str) -> list[str]:
    with db.connect() as connection:
        query = select(AuditEventRow.action).where(AuditEventRow.entity_id == entity_id)
        return list(connection.scalars(query.order_by(AuditEventRow.id)))


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


class Promotions:
    """A probe of the registry's champion alias that the test moves, or makes fail."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.failing = False

    def __call__(self) -> str | None:
        if self.failing:
            raise ConnectionError("registry unreachable")
        return self.version


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds (checked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def score_versions(db: Engine, referral_id: str) -> list[str]:
    """The model versions of a referral's stored scores, oldest first."""
    with db.connect() as connection:
        rows = connection.execute(
            select(ScoreRow.model_version)
            .where(ScoreRow.referral_id == referral_id)
            .order_by(ScoreRow.id)
        )
        return [version for (version,) in rows]


def polling_app(settings: Settings, loader: Switch, probe: Promotions, *, backlog: bool) -> Any:
    """An app that checks ``probe`` for a promoted champion every 50 ms."""
    polling = settings.model_copy(update={"model_poll_seconds": 0.05})
    return create_app(polling, scorer_loader=loader, probe=probe, score_backlog_on_start=backlog)


def version_of(scorer: Scorer, version: str) -> Scorer:
    """The same model registered as another version."""
    renamed = copy.copy(scorer)
    renamed.version = version
    return renamed


def test_each_promotion_is_loaded_and_the_backlog_worker_rescores_the_queue(
    settings: Settings, scorer: Scorer, admin: dict[str, str], db: Engine
) -> None:
    switch, promotions = Switch(None), Promotions()
    app = polling_app(settings, switch, promotions, backlog=True)
    with TestClient(app, raise_server_exceptions=False, headers=admin) as client:
        referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
        time.sleep(0.3)  # several checks while the registry names no champion
        assert client.get("/v1/model").json()["status"] == "no_model"

        switch.scorer, promotions.version = scorer, "test-model/1"
        assert wait_for(lambda: score_versions(db, referral_id) == ["test-model/1"])
        assert client.get("/v1/model").json()["version"] == "test-model/1"

        promotions.failing = True  # the registry is away for a while: the model stays
        time.sleep(0.3)
        assert client.get("/v1/model").json()["version"] == "test-model/1"
        promotions.failing = False
        switch.scorer, promotions.version = version_of(scorer, "test-model/2"), "test-model/2"
        assert wait_for(lambda: score_versions(db, referral_id)[-1:] == ["test-model/2"])
        assert client.get("/v1/model").json()["version"] == "test-model/2"
        assert score_versions(db, referral_id) == ["test-model/1", "test-model/2"]


def test_other_workers_load_a_promotion_and_leave_the_queue_to_the_backlog_worker(
    settings: Settings, scorer: Scorer, admin: dict[str, str], db: Engine
) -> None:
    switch, promotions = Switch(None), Promotions()
    app = polling_app(settings, switch, promotions, backlog=False)
    with TestClient(app, raise_server_exceptions=False, headers=admin) as client:
        waiting = client.post("/v1/referrals", json=referral()).json()["referral_id"]
        switch.scorer, promotions.version = scorer, "test-model/1"
        assert wait_for(lambda: client.get("/v1/model").json().get("version") == "test-model/1")
        time.sleep(0.3)
        assert score_versions(db, waiting) == []  # the backlog worker scores it, not this one
        later = client.post("/v1/referrals", json=referral(child_id="C-2001"))
        assert (later.json()["status"], later.json()["model_version"]) == ("scored", "test-model/1")


def test_the_backlog_worker_rescores_what_a_lagging_worker_scored_with_the_old_model(
    settings: Settings, scorer: Scorer, admin: dict[str, str], db: Engine
) -> None:
    second = version_of(scorer, "test-model/2")
    first_switch, first_registry = Switch(scorer), Promotions()
    first_registry.version = scorer.version
    lagging_registry = Promotions()  # the other worker has not checked the registry yet
    lagging_registry.version = scorer.version
    backlog_worker = polling_app(settings, first_switch, first_registry, backlog=True)
    lagging = polling_app(settings, Switch(scorer), lagging_registry, backlog=False)
    with (
        TestClient(backlog_worker, headers=admin) as first,
        TestClient(lagging, headers=admin) as other,
    ):
        first_switch.scorer, first_registry.version = second, second.version
        assert wait_for(lambda: first.get("/v1/model").json()["version"] == "test-model/2")
        late = other.post("/v1/referrals", json=referral(child_id="C-late")).json()
        assert late["model_version"] == "test-model/1"
        late_id = late["referral_id"]
        assert wait_for(lambda: score_versions(db, late_id) == ["test-model/1", "test-model/2"])


def test_the_backlog_skips_a_referral_another_worker_scored_with_the_same_model(
    make_client: ClientFactory, scorer: Scorer, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(Switch(None))
    ids = [
        client.post("/v1/referrals", json=referral(child_id=f"C-{n}")).json()["referral_id"]
        for n in range(3)
    ]
    state = client.app.state.service  # type: ignore[attr-defined]
    model = LoadedModel(scorer=scorer)
    assert scoring.score_backlog(state.sessions, model, actor="worker-1").scored == 3
    # Another worker read the queue before the first stored its scores, and works on that list.
    stale = partial(lambda ids, *a, **k: list(ids), ids)
    monkeypatch.setattr(scoring, "queue_entries_to_score", stale)
    again = scoring.score_backlog(state.sessions, model, actor="worker-2", limit=10)
    assert (again.scored, again.failed) == (0, 0)
    assert [score_versions(db, i) for i in ids] == [["test-model/1"]] * 3
    with pytest.raises(scoring.AlreadyScored):
        try_score(
            state.sessions,
            model,
            referral_id=ids[0],
            actor="worker-2",
            trigger="model_loaded",
            unless_scored_by=scorer.version,
        )


def test_the_backlog_does_not_retry_referrals_that_failed_with_this_model(
    make_client: ClientFactory, scorer: Scorer, db: Engine
) -> None:
    client = make_client(Switch(None))
    for n in range(2):
        client.post("/v1/referrals", json=referral(child_id=f"C-{n}"))
    broken = copy.copy(scorer)
    broken.__class__ = BrokenScorer
    state = client.app.state.service  # type: ignore[attr-defined]
    failed: set[str] = set()
    first = scoring.score_backlog(
        state.sessions, LoadedModel(scorer=broken), actor="t", failed_before=failed
    )
    assert (first.scored, first.failed, first.remaining, len(failed)) == (0, 2, 2, 2)
    again = scoring.score_backlog(
        state.sessions, LoadedModel(scorer=broken), actor="t", failed_before=failed
    )
    assert (again.scored, again.failed, again.remaining) == (0, 0, 2)
    fixed = scoring.score_backlog(state.sessions, LoadedModel(scorer=scorer), actor="t")
    assert (fixed.scored, fixed.failed, fixed.remaining) == (2, 0, 0)


def test_the_registry_probe_waits_for_a_registry_without_creating_one(
    settings: Settings, tmp_path: Path
) -> None:
    store = tmp_path / "ml.db"
    probe = champion_probe(settings)
    assert probe() is None and not store.exists()
    sqlite3.connect(store).close()  # created, but `triage train` has not made the tables yet
    assert probe() is None
    with sqlite3.connect(store) as connection:
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    assert tables == 0, "the probe left the store for the trainer to create"


def test_a_holder_loads_only_a_version_other_than_its_own(scorer: Scorer) -> None:
    loads: list[Scorer | None] = []
    offered: list[Scorer | None] = [scorer]

    def loader() -> Scorer | None:
        loads.append(offered[0])
        return offered[0]

    holder = ModelHolder(loader)
    assert not holder.load_if_promoted(lambda: None) and loads == []
    assert holder.load_if_promoted(lambda: "test-model/1") and len(loads) == 1
    assert not holder.load_if_promoted(lambda: "test-model/1") and len(loads) == 1
    offered[0] = None  # the registry names a version the loader cannot find: keep the model
    assert not holder.load_if_promoted(lambda: "test-model/9") and len(loads) == 2
    assert holder.current is not None and holder.current.scorer is scorer
    assert holder.last_error == "no champion model is registered"
    assert not holder.load_if_promoted(lambda: "test-model/9") and len(loads) == 2, "not again"
    offered[0] = scorer
    assert holder.load(unless="test-model/1") is False and len(loads) == 2
    assert holder.load() and len(loads) == 3


class BrokenScorer(Scorer):
    def score_matrix(self, X: Any, *, with_range: bool = True) -> Any:
        raise RuntimeError("model exploded")


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


def test_an_injured_non_mobile_infant_is_reviewed_first_with_or_without_a_model(
    make_client: ClientFactory, scorer: Scorer
) -> None:
    baby = {"born": (T0 - timedelta(days=90)).date(), "child_id": "C-baby"}
    scored = make_client(Switch(scorer)).post("/v1/referrals", json=referral(**baby)).json()
    assert scored["band"] == "Review first"
    assert [f["code"] for f in scored["flags"]] == ["non_mobile_infant_injury"]
    assert "baby under six months" in scored["flags"][0]["words"]
    assert scored["model_band"] in BANDS


def test_no_model_still_flags_an_injured_infant_at_the_top(make_client: ClientFactory) -> None:
    client = make_client(Switch(None))
    client.post("/v1/referrals", json=referral(child_id="C-old"))
    baby = referral(child_id="C-baby", born=(T0 - timedelta(days=60)).date())
    flagged = client.post("/v1/referrals", json=baby).json()
    assert flagged["status"] == "unscored" and flagged["flags"][0]["code"]
    first = client.get("/v1/queue").json()["items"][0]
    assert first["referral_id"] == flagged["referral_id"]


@pytest.mark.parametrize("with_model", [True, False])
def test_a_relatives_photographed_injury_is_reviewed_first(
    make_client: ClientFactory, scorer: Scorer, with_model: bool
) -> None:
    client = make_client(Switch(scorer if with_model else None))
    body = referral(child_id="C-photo")
    body["injury"]["photographed"] = True  # the binding example: a relative's photographs
    got = client.post("/v1/referrals", json=body).json()
    assert [f["code"] for f in got["flags"]] == ["family_photographed_injury"]
    assert got["band"] == ("Review first" if with_model else None)
    assert client.get("/v1/queue").json()["items"][0]["referral_id"] == got["referral_id"]


@pytest.mark.parametrize("with_model", [True, False])
def test_a_third_referral_after_closures_from_two_people_reads_the_history(
    make_client: ClientFactory, scorer: Scorer, db: Engine, with_model: bool
) -> None:
    client = make_client(Switch(scorer if with_model else None))
    earlier_ids = []
    for days, who in ((200, "P-1"), (100, "P-2")):
        earlier = referral(
            child_id="C-rep", received_at=T0 - timedelta(days=days),
            referrer={"type": "school", "referrer_id": who}, injury={"reported": False},
        )  # fmt: skip
        referral_id = client.post("/v1/referrals", json=earlier).json()["referral_id"]
        earlier_ids.append(referral_id)
        with session_factory(db)() as session:
            record_decision(
                session, referral_id=referral_id, decision="no_further_action",
                decided_at=T0 - timedelta(days=days - 1),
            )  # fmt: skip
            session.commit()
    third = referral(
        child_id="C-rep", referrer={"type": "school", "referrer_id": "P-1"},
        injury={"reported": False},
    )  # fmt: skip
    got = client.post("/v1/referrals", json=third).json()
    assert [f["code"] for f in got["flags"]] == ["third_referral_after_nfa"], got
    assert "more than one person" in got["flags"][0]["words"]
    if with_model:
        # Without one of the earlier referrals the history no longer meets the rule.
        url = f"/v1/referrals/{got['referral_id']}/disputes"
        what_if = client.post(url, json={"record_id": earlier_ids[0], "reason": "x"}).json()
        flags = {
            side: [f["code"] for f in what_if["what_if"][side]["flags"]]
            for side in ("before", "after")
        }
        assert flags == {"before": ["third_referral_after_nfa"], "after": []}, what_if


# --- queue ----------------------------------------------------------------------------------


def test_open_referrals_found_in_the_store_are_queued_at_start_up(
    make_client: ClientFactory, db: Engine
) -> None:
    with session_factory(db)() as session:
        add_household(
            session, household={"household_id": "H-1", "deprivation_decile": 2, "synthetic": True}
        )
        for child_id, born in (("C-old", date(2012, 1, 1)), ("C-baby", T0.date() - timedelta(60))):
            add_child(
                session,
                child={"child_id": child_id, "household_id": "H-1", "given_name": "A",
                       "family_name": "B", "date_of_birth": born, "sex": "female",
                       "ethnicity": "white", "disability": False, "deprivation_decile": 2,
                       "synthetic": True},
            )  # fmt: skip
        for referral_id, child_id in (("R-old", "C-old"), ("R-baby", "C-baby")):
            add_referral(
                session,
                referral={"referral_id": referral_id, "source_system": "extract",
                          "source_referral_id": referral_id, "child_id": child_id,
                          "household_id": "H-1", "received_at": T0, "referrer_type": "police",
                          "concerns": ["physical_abuse"], "injury_reported": True,
                          "injury_sites": ["limbs"], "injury_photographed": False,
                          "narrative": "[synthetic]", "synthetic": True},
            )  # fmt: skip
        add_score(
            session, referral_id="R-old", model_version="old/1", probability=0.2,
            probability_low=0.1, probability_high=0.3, band="Standard", reasons=[],
        )  # fmt: skip
        session.commit()
    items = make_client(Switch(None)).get("/v1/queue").json()["items"]
    assert [(i["referral_id"], i["status"]) for i in items] == [
        ("R-baby", "unscored"),
        ("R-old", "scored"),
    ]
    assert items[0]["flags"][0]["code"] == "non_mobile_infant_injury"
    assert (items[1]["band"], items[1]["model_version"]) == ("Standard", "old/1")
    assert count(db, QueueEntryRow) == 2


def test_with_no_model_the_start_up_reads_history_for_the_safety_rules(
    settings: Settings, admin: dict[str, str], db: Engine
) -> None:
    with session_factory(db)() as session:
        add_household(
            session, household={"household_id": "H-1", "deprivation_decile": 2, "synthetic": True}
        )
        add_child(
            session,
            child={"child_id": "C-rep", "household_id": "H-1", "given_name": "A",
                   "family_name": "B", "date_of_birth": date(2015, 1, 1), "sex": "female",
                   "ethnicity": "white", "disability": False, "deprivation_decile": 2,
                   "synthetic": True},
        )  # fmt: skip
        for referral_id, days, who in (("R-1", 200, "P-1"), ("R-2", 100, "P-2"), ("R-3", 0, "P-1")):
            add_referral(
                session,
                referral={"referral_id": referral_id, "source_system": "extract",
                          "source_referral_id": referral_id, "child_id": "C-rep",
                          "household_id": "H-1", "received_at": T0 - timedelta(days=days),
                          "referrer_type": "school", "referrer_id": who, "concerns": ["neglect"],
                          "injury_reported": False, "injury_sites": [],
                          "injury_photographed": False, "narrative": "[synthetic]",
                          "synthetic": True},
            )  # fmt: skip
            if days:
                record_decision(
                    session, referral_id=referral_id, decision="no_further_action",
                    decided_at=T0 - timedelta(days=days - 1),
                )  # fmt: skip
        session.commit()
    app = create_app(settings, scorer_loader=Switch(None), score_backlog_on_start=True)
    with TestClient(app, headers=admin) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (item,) = client.get("/v1/queue").json()["items"]
            if item["flags"]:
                break
            time.sleep(0.05)
    assert item["referral_id"] == "R-3" and item["status"] == "unscored"
    assert [f["code"] for f in item["flags"]] == ["third_referral_after_nfa"]


def test_queue_orders_filters_and_pages(make_client: ClientFactory, scorer: Scorer) -> None:
    switch = Switch(None)
    client = make_client(switch)
    now = datetime.now(UTC).replace(microsecond=0)
    unscored_ids = [
        client.post("/v1/referrals", json=referral(child_id=f"C-u{i}", received_at=T0)).json()[
            "referral_id"
        ]
        for i in range(2)
    ]
    switch.scorer = scorer
    client.post("/v1/admin/reload-model")  # scores those two...
    switch.scorer = None
    client.post("/v1/admin/reload-model")  # ...and a failed reload keeps the model
    concerns = [["neglect"], ["physical_abuse"], ["neglect", "domestic_abuse"], ["missing"]]
    for i, concern in enumerate(concerns):
        body = referral(
            child_id=f"C-s{i}",
            received_at=T0 + timedelta(hours=i) if i < 3 else now - timedelta(minutes=5),
            born=date(2012 + i, 1, 1),
            concerns=concern,
            injury={"reported": False},
        )
        assert client.post("/v1/referrals", json=body).status_code == 201
    baby = referral(child_id="C-baby", born=(T0 - timedelta(days=30)).date())
    flagged_id = client.post("/v1/referrals", json=baby).json()["referral_id"]

    items = client.get("/v1/queue", params={"limit": 200}).json()["items"]
    assert len(items) == 7
    assert items[0]["referral_id"] == flagged_id
    rank = {band: i for i, band in enumerate(BANDS)}
    keys = [
        (not i["flags"], i["status"] == "scored", rank[i["band"]], -i["probability"],
         i["received_at"])
        for i in items
    ]  # fmt: skip
    assert keys == sorted(keys)
    assert all(len(i["reasons"]) == 3 for i in items)
    assert set(unscored_ids) <= {i["referral_id"] for i in items}

    paged, cursor = [], None
    while True:
        page = client.get(
            "/v1/queue", params={"limit": 2, "cursor": cursor} if cursor else {"limit": 2}
        ).json()
        paged += [i["referral_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [i["referral_id"] for i in items]

    band = items[-1]["band"]
    by_band = client.get("/v1/queue", params={"band": band}).json()["items"]
    assert by_band and all(i["band"] == band for i in by_band)
    neglect = client.get("/v1/queue", params={"concern": "neglect"}).json()["items"]
    assert len(neglect) == 2 and all("neglect" in i["concerns"] for i in neglect)
    young = client.get("/v1/queue", params={"max_age_months": 12}).json()["items"]
    assert [i["referral_id"] for i in young] == [flagged_id]
    waiting = client.get("/v1/queue", params={"waiting_hours": 24}).json()["items"]
    assert len(waiting) == 6 and all(i["waiting_hours"] >= 24 for i in waiting)
    assert all(i["overdue"] for i in waiting)

    bad = client.get("/v1/queue", params={"cursor": "bm9wZQ"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"
    assert client.get("/v1/queue", params={"band": "Urgent"}).status_code == 422
    assert client.get("/v1/queue", params={"concern": "gossip"}).status_code == 422


# --- decisions, reopening -------------------------------------------------------------------


def test_a_decision_closes_the_referral_and_a_second_gets_409(client: TestClient) -> None:
    referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
    url = f"/v1/referrals/{referral_id}/decisions"
    unexplained = client.post(url, json={"decision": "assessment", "agreement": "should_be_higher"})
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


def _events(*, household: str = "H-311", child: str | None = "C-1042") -> list[dict[str, Any]]:
    return [
        {"source_system": "police-niche", "source_event_id": f"DA-{next(_serial)}",
         "agency": "police", "kind": "domestic_abuse_incident",
         "occurred_at": (T0 - timedelta(days=20)).isoformat(), "household_id": household},
        {"source_system": "health-ed", "source_event_id": f"ED-{next(_serial)}",
         "agency": "health", "kind": "ed_injury_attendance",
         "occurred_at": (T0 - timedelta(days=10)).isoformat(), "child_id": child},
    ]  # fmt: skip


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


# --- model and docs -------------------------------------------------------------------------


def test_model_route_describes_the_champion(client: TestClient, scorer: Scorer) -> None:
    info = client.get("/v1/model").json()
    assert info["status"] == "loaded" and info["version"] == "test-model/1"
    assert info["bands"]["thresholds"] == list(scorer.bands.thresholds)
    assert info["outcome_words"] == scorer.outcome_words
    assert {rule["code"] for rule in info["safety_rules"]} >= {"non_mobile_infant_injury"}


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/referrals", "/v1/events", "/v1/queue", "/v1/model"} <= set(spec["paths"])
    body = spec["paths"]["/v1/referrals"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["police"]["value"]["source_referral_id"] == "WMP-2026-004512"
    assert "AgencyEventIn" in spec["components"]["schemas"]


# --- operations -------------------------------------------------------------------------------


def test_health_readiness_and_metrics_without_personal_data(
    make_client: ClientFactory, scorer: Scorer
) -> None:
    bare = make_client(None)
    assert bare.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}
    degraded = bare.get("/readyz")
    assert degraded.status_code == 200
    assert degraded.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "model": "missing"},
    }

    client = make_client(Switch(scorer))
    assert client.get("/readyz").json()["status"] == "ok"
    body = referral()
    referral_id = client.post("/v1/referrals", json=body).json()["referral_id"]
    client.get(f"/v1/referrals/{referral_id}")
    text = client.get("/metrics").text
    assert 'triage_model_info{version="test-model/1"} 1.0' in text
    assert "triage_scores{band=" in text
    assert "triage_queue_unscored 0.0" in text
    assert 'route="/v1/referrals/{referral_id}"' in text
    for personal in (referral_id, body["child"]["given_name"], body["child"]["child_id"]):
        assert personal not in text


def test_security_headers_on_every_reply(make_client: ClientFactory) -> None:
    client = make_client(None)
    for response in (
        client.get("/v1/queue"),
        client.get("/v1/referrals/R-nope"),
        client.get("/docs"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "Strict-Transport-Security" not in response.headers
    assert client.get("/v1/queue").headers["Cache-Control"] == "no-store"
    over_tls = TestClient(client.app, base_url="https://testserver", headers=client.headers)
    assert "max-age" in over_tls.get("/healthz").headers["Strict-Transport-Security"]


def test_access_log_is_json_with_route_templates_only(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = referral()
    with caplog.at_level("INFO", logger="api.access"):
        referral_id = client.post("/v1/referrals", json=body).json()["referral_id"]
        client.get(f"/v1/referrals/{referral_id}", params={"x": body["child"]["family_name"]})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert [line["route"] for line in lines] == ["/v1/referrals", "/v1/referrals/{referral_id}"]
    assert all(line["actor"].startswith("U-") for line in lines)
    everything = caplog.text
    for personal in (referral_id, body["child"]["given_name"], body["child"]["family_name"]):
        assert personal not in everything
