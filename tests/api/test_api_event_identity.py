"""Agency events that name a child by details instead of an id (issue 21, item 1): linked to
the known child, a possible match opening a task (never a silent merge), or a new child; one
batch's events about one unknown child find each other; a resend is not resolved twice."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from access_helpers import sign_in_page, user_headers
from api_support import (  # noqa: F401  (fixtures)
    T0,
    Switch,
    admin,
    db,
    referral,
    scorer,
    settings,
)
from fastapi.testclient import TestClient
from identity_support import FakeResolver
from sqlalchemy import Engine, func, select

from api.app import create_app
from models.scorer import Scorer
from triage.settings import Settings
from triage.store import AuditEventRow, ChildRow, EventRow, IdentityTaskRow, make_engine

BORN = "2014-06-01"  # the date of birth of tests/api_support.py's referral child


@pytest.fixture
def resolver() -> FakeResolver:
    """The fake linker the app holds."""
    return FakeResolver()


@pytest.fixture
def client(
    settings: Settings, admin: dict[str, str], scorer: Scorer, resolver: FakeResolver
) -> Iterator[TestClient]:
    """The app with the test model and the fake linker, signed in as an admin."""
    app = create_app(
        settings,
        score_backlog_on_start=False,
        scorer_loader=Switch(scorer),
        identity_resolver=resolver,
    )
    with TestClient(app, raise_server_exceptions=False, headers=admin) as test_client:
        yield test_client


def event(source_event_id: str, given: str, **extra: Any) -> dict[str, Any]:
    """An ED attendance about a child named by details only."""
    return {
        "source_system": "health-ed",
        "source_event_id": source_event_id,
        "agency": "health",
        "kind": "ed_injury_attendance",
        "occurred_at": (T0 + timedelta(days=1)).isoformat(),
        "child": {"given_name": given, "family_name": "Doe", "date_of_birth": BORN, "sex": "male"},
    } | extra


def known_child_with_open_referral(client: TestClient, **child: Any) -> str:
    """C-1042 with a referral received after the events will be recorded; its referral id."""
    body = referral(child_id="C-1042", received_at=T0 + timedelta(days=2))
    body["child"] |= child
    response = client.post("/v1/referrals", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["referral_id"])


def _count(db: Engine, query: Any) -> int:
    with db.connect() as connection:
        return int(connection.execute(query).scalar_one())


def test_an_event_with_a_misspelt_name_joins_the_known_child_and_rescores(
    client: TestClient, db: Engine
) -> None:
    referral_id = known_child_with_open_referral(client)
    children = _count(db, select(func.count()).select_from(ChildRow))
    # Recorded before the referral was received, so it counts for the referral.
    sent = event("ED-7", "Samm", occurred_at=T0.isoformat(), recorded_at=T0.isoformat())
    response = client.post("/v1/events", json=sent)
    assert response.status_code == 201, response.text
    item = response.json()["items"][0]
    assert item["resolution"]["outcome"] == "linked"
    assert item["resolution"]["person_id"] == "C-1042"
    assert item["resolution"]["match_probability"] == pytest.approx(0.97)
    assert response.json()["rescored"] == [referral_id]
    with db.connect() as connection:
        stored = connection.execute(
            select(EventRow.child_id).where(EventRow.event_id == item["event_id"])
        ).scalar_one()
    assert stored == "C-1042"
    assert _count(db, select(func.count()).select_from(ChildRow)) == children
    timeline = client.get(f"/v1/referrals/{referral_id}").json()["timeline"]
    assert item["event_id"] in {entry["record_id"] for entry in timeline}
    with db.connect() as connection:
        audit = connection.execute(
            select(AuditEventRow.payload).where(AuditEventRow.action == "events.received")
        ).scalar_one()
    assert audit["identity"][0]["outcome"] == "linked"
    assert "Samm" not in str(audit)  # ids and numbers only


def test_a_possible_match_from_an_event_opens_a_task_and_confirming_moves_the_event(
    client: TestClient, db: Engine, settings: Settings
) -> None:
    referral_id = known_child_with_open_referral(client, postcode="LS1 4AP")
    # Same birth, surname and postcode, another given name: the fake linker's twins rule.
    sent = event("ED-8", "Ella", occurred_at=T0.isoformat(), recorded_at=T0.isoformat())
    sent["child"]["postcode"] = "LS1 4AP"
    response = client.post("/v1/events", json=sent)
    assert response.status_code == 201, response.text
    item = response.json()["items"][0]
    resolution = item["resolution"]
    assert resolution["outcome"] == "possible_match"
    assert resolution["person_id"] != "C-1042"  # a new child until a person decides
    assert response.json()["rescored"] == []  # the known child's referrals did not move
    task = client.get(f"/v1/identity-tasks/{resolution['task_id']}").json()
    assert task["event_id"] == item["event_id"]
    assert task["referral_id"] is None
    assert task["candidate_person_id"] == "C-1042"
    confirmed = client.post(
        f"/v1/identity-tasks/{resolution['task_id']}/confirm", json={"note": "ED confirmed DOB"}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert referral_id in confirmed.json()["rescored"]
    with db.connect() as connection:
        moved = connection.execute(
            select(EventRow.child_id).where(EventRow.event_id == item["event_id"])
        ).scalar_one()
    assert moved == "C-1042"
    page = TestClient(client.app, follow_redirects=False, headers={"Accept": "text/html"})
    sign_in_page(page, settings, "practitioner")
    shown = page.get(f"/identity-tasks/{resolution['task_id']}")
    assert shown.status_code == 200
    assert item["event_id"] in shown.text
    assert "A record from health (" in shown.text
    assert "Ella" in shown.text and "LS1 4AP" in shown.text


def test_one_batch_about_one_unknown_child_makes_one_new_child(
    client: TestClient, db: Engine, resolver: FakeResolver
) -> None:
    children = _count(db, select(func.count()).select_from(ChildRow))
    batch = [event("ED-1", "Robin"), event("ED-2", "Robin"), event("ED-3", "Robyn")]
    response = client.post("/v1/events", json=batch)
    assert response.status_code == 201, response.text
    outcomes = [item["resolution"]["outcome"] for item in response.json()["items"]]
    people = {item["resolution"]["person_id"] for item in response.json()["items"]}
    assert outcomes == ["new", "linked", "linked"]
    assert len(people) == 1
    assert _count(db, select(func.count()).select_from(ChildRow)) == children + 1
    assert len(resolver.calls) == 3


def test_a_resent_event_is_not_resolved_again(
    client: TestClient, db: Engine, resolver: FakeResolver
) -> None:
    first = client.post("/v1/events", json=event("ED-9", "Robin"))
    assert first.status_code == 201, first.text
    calls = len(resolver.calls)
    again = client.post("/v1/events", json=event("ED-9", "Robin"))
    assert again.status_code == 200, again.text
    item = again.json()["items"][0]
    assert item["status"] == "duplicate"
    assert item["resolution"] == first.json()["items"][0]["resolution"]
    assert len(resolver.calls) == calls
    assert _count(db, select(func.count()).select_from(ChildRow).where(
        ChildRow.given_name == "Robin"
    )) == 1  # fmt: skip


def test_without_a_linker_the_event_keeps_a_new_child_and_a_check_by_hand(
    client: TestClient, db: Engine, resolver: FakeResolver
) -> None:
    resolver.fail = True
    response = client.post("/v1/events", json=event("ED-10", "Robin"))
    assert response.status_code == 201, response.text
    resolution = response.json()["items"][0]["resolution"]
    assert resolution["outcome"] == "new"
    assert resolution["task_id"] is not None
    assert _count(db, select(func.count()).select_from(IdentityTaskRow)) == 1


def test_an_event_naming_no_child_and_no_household_is_refused_precisely(
    client: TestClient,
) -> None:
    sent = event("ED-11", "Robin")
    del sent["child"]
    response = client.post("/v1/events", json=sent)
    assert response.status_code == 422
    fields = {error["field"]: error["reason"] for error in response.json()["errors"]}
    assert "child (the child's details)" in fields["household_id"]
    bad = event("ED-12", "Robin")
    bad["child"]["date_of_birth"] = "2999-01-01"
    response = client.post("/v1/events", json=bad)
    assert response.status_code == 422
    assert "child.date_of_birth" in {error["field"] for error in response.json()["errors"]}


class _SlowFirstResolver(FakeResolver):
    """On its first call, starts ``race`` in a thread and gives it time to run meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.race: Any = None
        self.thread: threading.Thread | None = None

    def resolve(self, record: Any, known: Any) -> Any:
        """Start the racing batch once, in the middle of the first resolution."""
        race, self.race = self.race, None
        if race is not None:
            self.thread = threading.Thread(target=race)
            self.thread.start()
            self.thread.join(timeout=1.0)  # it waits for this transaction, or it finishes
        return super().resolve(record, known)


def test_two_batches_about_one_unknown_child_at_once_make_one_child(
    migrated_url: str, tmp_path: Path, scorer: Scorer
) -> None:
    from service.intake import receive_events
    from triage.schema import AgencyEventIn

    settings = Settings(
        var_dir=tmp_path, database_url=migrated_url, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m"
    )
    resolver = _SlowFirstResolver()
    replies: list[Any] = []
    app = create_app(
        settings, score_backlog_on_start=False, scorer_loader=Switch(scorer),
        identity_resolver=resolver,
    )  # fmt: skip
    headers = user_headers(settings, "admin")
    with TestClient(app, raise_server_exceptions=False, headers=headers) as test_client:
        state = test_client.app.state.service  # type: ignore[attr-defined]
        other = [AgencyEventIn.model_validate(event("ED-21", "Robin"))]
        resolver.race = partial(_events_into, replies, receive_events, state, other)
        response = test_client.post("/v1/events", json=event("ED-20", "Robin"))
        assert response.status_code == 201, response.text
        assert resolver.thread is not None
        resolver.thread.join(timeout=30)
    [mine] = response.json()["items"]
    [theirs] = replies[0].body["items"]
    assert mine["resolution"]["outcome"] == "new"
    assert theirs["resolution"]["outcome"] == "linked"  # waited, then read the first's child
    assert theirs["resolution"]["person_id"] == mine["resolution"]["person_id"]
    engine = make_engine(migrated_url)
    try:
        assert _count(engine, select(func.count()).select_from(ChildRow)) == 1
    finally:
        engine.dispose()


def _events_into(replies: list[Any], receive: Any, state: Any, events: Any) -> None:
    replies.append(receive(state, events=events, batch=True, actor="admin", idempotency_key=None))
