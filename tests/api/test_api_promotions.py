"""Model promotions on a running service: each worker loads the registry's new champion,
and the backlog worker rescores the queue with it once."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import copy
import sqlite3
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from api_support import (  # noqa: F401  (fixtures)
    BrokenScorer,
    ClientFactory,
    Switch,
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

from api.app import create_app
from models.scorer import Scorer
from service import scoring
from service.champion import LoadedModel, ModelHolder, champion_probe
from service.scoring import try_score
from triage.settings import Settings
from triage.store import (
    ScoreRow,
)

# --- promotions and the backlog ------------------------------------------------------------


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
