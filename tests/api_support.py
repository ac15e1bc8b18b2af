"""What the service API tests share: the app on a migrated SQLite database, a fitted model,
clients signed in as an admin, valid bodies and look-ups of what was stored.

Test modules import the fixtures by name (``# noqa: F401``) and the helpers they use; this
module holds no tests, so pytest does not collect it.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from access_helpers import user_headers
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from store_support import StoreTemplates

from api.app import create_app
from models.dataset import load_training_data
from models.scorer import Scorer
from models.train import fit_scorer
from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings
from triage.store import AuditEventRow, IdempotencyKeyRow, ScoreRow, make_engine
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

T0 = datetime(2026, 4, 13, 9, 0, tzinfo=UTC)  # a Monday
_serial = itertools.count()


_fitted: list[Scorer] = []


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    """A scorecard fitted on a small synthetic world, as test_models fits one (seconds).

    Fitted once per test run and shared by every module that imports this fixture: the
    tests read it and change only copies (``copy.copy``). A session scope alone would not
    share it: a fixture imported into a module is that module's own.
    """
    if not _fitted:
        directory = tmp_path_factory.mktemp("world")
        write_extract(generate_world(WorldParams(n_referrals=3_000, seed=11)), directory)
        _fitted.append(fit_scorer(load_training_data(directory), n_boot=2, version="test-model/1"))
    return _fitted[0]


@pytest.fixture
def settings(tmp_path: Path, store_templates: StoreTemplates) -> Settings:
    """Settings on a fresh, migrated SQLite database (a copy: tests/store_support.py)."""
    url = store_templates.sqlite(tmp_path / "triage.db")
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
    """Headers for an admin, who may use every route (access itself: tests/api/test_access.py)."""
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


class BrokenScorer(Scorer):
    def score_matrix(self, X: Any, *, with_range: bool = True) -> Any:
        raise RuntimeError("model exploded")


def _events(*, household: str = "H-311", child: str | None = "C-1042") -> list[dict[str, Any]]:
    """Two events that occurred before a referral at T0 and were shared before it too (sent
    now, so without recorded_at they would be known only from now: too late for it)."""
    return [
        {"source_system": "police-niche", "source_event_id": f"DA-{next(_serial)}",
         "agency": "police", "kind": "domestic_abuse_incident",
         "occurred_at": (T0 - timedelta(days=20)).isoformat(),
         "recorded_at": (T0 - timedelta(days=17)).isoformat(), "household_id": household},
        {"source_system": "health-ed", "source_event_id": f"ED-{next(_serial)}",
         "agency": "health", "kind": "ed_injury_attendance",
         "occurred_at": (T0 - timedelta(days=10)).isoformat(),
         "recorded_at": (T0 - timedelta(days=9)).isoformat(), "child_id": child},
    ]  # fmt: skip
