"""Identity resolution through the API (issue 21, item 1, the service side): a referral without
a child id is resolved by the linker (here ``identity_support.FakeResolver``, a deterministic
stand-in for ``triage.identity``), possible matches become tasks, confirming merges, and a
merge can be undone exactly."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from access_helpers import csrf_of, key_headers, sign_in_page, user_headers
from api_support import (  # noqa: F401  (fixtures)
    T0,
    Switch,
    admin,
    audit_actions,
    db,
    referral,
    scorer,
    settings,
)
from fastapi.testclient import TestClient
from identity_support import FakeResolver
from sqlalchemy import Engine, select

from api.app import create_app
from models.scorer import Scorer
from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings
from triage.store import (
    AuditEventRow,
    EventRow,
    HouseholdMembershipRow,
    IdentityRecordRow,
    IdentityTaskRow,
    PersonMergeRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
    make_engine,
)

NHS = "9434765919"  # a valid modulus-11 NHS number


@pytest.fixture
def resolver() -> FakeResolver:
    """The fake linker the app holds."""
    return FakeResolver()


def _client(settings: Settings, headers: dict[str, str], **kwargs: Any) -> Iterator[TestClient]:
    app = create_app(settings, score_backlog_on_start=False, **kwargs)
    with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
        yield client


@pytest.fixture
def client(
    settings: Settings, admin: dict[str, str], scorer: Scorer, resolver: FakeResolver
) -> Iterator[TestClient]:
    """The app with the test model and the fake linker, signed in as an admin."""
    yield from _client(settings, admin, scorer_loader=Switch(scorer), identity_resolver=resolver)


def unnamed(given: str, family: str = "Doe", **child: Any) -> dict[str, Any]:
    """A referral body whose child has details but no ids."""
    body = referral(received_at=T0 + timedelta(days=2))
    body["child"] = {
        "given_name": given,
        "family_name": family,
        "date_of_birth": body["child"]["date_of_birth"],
        "sex": "male",
    } | child
    return body


def known_child(client: TestClient, child_id: str = "C-1042", **child: Any) -> str:
    """Store a referral naming the child (so the service knows them); its referral id."""
    body = referral(child_id=child_id)
    body["child"] |= child
    response = client.post("/v1/referrals", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["resolution"] == {
        "outcome": "given", "person_id": child_id, "match_probability": None, "task_id": None,
    }  # fmt: skip
    return str(response.json()["referral_id"])


def _rows(db: Engine, column: Any, key: Any, *where: Any) -> dict[str, Any]:
    with db.connect() as connection:
        return dict(connection.execute(select(key, column).where(*where)).all())


def snapshot(db: Engine) -> dict[str, dict[str, Any]]:
    """Who every row points at, for comparing before a merge and after its undoing."""
    return {
        "referral_child": _rows(db, ReferralRow.child_id, ReferralRow.referral_id),
        "referral_household": _rows(db, ReferralRow.household_id, ReferralRow.referral_id),
        "queue_child": _rows(db, QueueEntryRow.child_id, QueueEntryRow.referral_id),
        "event_child": _rows(db, EventRow.child_id, EventRow.event_id),
        "event_person": _rows(db, EventRow.person_id, EventRow.event_id),
        "memberships": _rows(
            db, HouseholdMembershipRow.person_id, HouseholdMembershipRow.membership_id
        ),
        "records": _rows(db, IdentityRecordRow.person_id, IdentityRecordRow.record_id),
    }


def test_a_misspelt_name_without_a_child_id_joins_the_right_child(
    client: TestClient, db: Engine, resolver: FakeResolver
) -> None:
    first = known_child(client)
    client.post("/v1/referrals", json=referral(child_id="C-2000", household_id="H-900"))
    response = client.post("/v1/referrals", json=unnamed("Samm"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["resolution"]["outcome"] == "linked"
    assert body["resolution"]["person_id"] == "C-1042"
    assert body["resolution"]["match_probability"] == pytest.approx(0.97)
    assert body["resolution"]["task_id"] is None
    assert resolver.calls and resolver.calls[-1] >= 1
    stored = _rows(db, ReferralRow.child_id, ReferralRow.referral_id)
    households = _rows(db, ReferralRow.household_id, ReferralRow.referral_id)
    assert stored[body["referral_id"]] == "C-1042"
    assert households[body["referral_id"]] == "H-311"  # the linked child's current household
    detail = client.get(f"/v1/referrals/{body['referral_id']}").json()
    assert first in {item["record_id"] for item in detail["timeline"]}
    # The linker weighed the spelling: no "identity to confirm" on top of it.
    assert detail["referral"]["identity_mismatch"] is None
    received = next(e for e in _audit(db, body["referral_id"]) if e.action == "referral.received")
    assert received.payload["resolution"]["outcome"] == "linked"
    assert "Samm" not in str(received.payload)


def _audit(db: Engine, entity_id: str) -> list[AuditEventRow]:
    with db.connect() as connection:
        query = select(AuditEventRow).where(AuditEventRow.entity_id == entity_id)
        return list(connection.execute(query.order_by(AuditEventRow.id)).all())  # type: ignore[arg-type]


def test_twins_stay_apart_and_rejecting_merges_nothing(client: TestClient, db: Engine) -> None:
    known_child(client, given_name="Amy", postcode="LS1 4AP")
    before = snapshot(db)
    response = client.post("/v1/referrals", json=unnamed("Ella", postcode="ls14ap"))
    assert response.status_code == 201, response.text
    resolution = response.json()["resolution"]
    assert resolution["outcome"] == "possible_match"
    assert resolution["person_id"] != "C-1042"  # a new child, never a silent merge
    assert resolution["match_probability"] == pytest.approx(0.6)
    task_id = resolution["task_id"]
    tasks = client.get("/v1/identity-tasks").json()["items"]
    assert [t["task_id"] for t in tasks] == [task_id]
    task = client.get(f"/v1/identity-tasks/{task_id}").json()
    assert task["candidate_person_id"] == "C-1042"
    given = next(row for row in task["comparison"] if row["field"] == "given_name")
    assert (given["incoming"], given["candidate"], given["words"]) == ("Ella", "Amy", "different")
    postcode = next(row for row in task["comparison"] if row["field"] == "postcode")
    assert postcode["incoming"] == postcode["candidate"] == "LS1 4AP"
    queue = client.get("/v1/queue").json()["items"]
    flagged = {item["referral_id"] for item in queue if item["identity_to_confirm"]}
    assert response.json()["referral_id"] in flagged
    rejected = client.post(f"/v1/identity-tasks/{task_id}/reject", json={"note": "twins"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["task"]["status"] == "rejected"
    assert rejected.json()["merge_id"] is None
    after = snapshot(db)
    assert after["referral_child"] == before["referral_child"] | {
        response.json()["referral_id"]: resolution["person_id"]
    }
    again = client.post(f"/v1/identity-tasks/{task_id}/confirm", json={"note": "changed mind"})
    assert again.status_code == 409
    assert "identity.task_rejected" in audit_actions(db, task_id)


def _possible_match(client: TestClient) -> dict[str, Any]:
    """The known child, an event about them, and a referral that may be them (``Samuel``)."""
    known_child(client, postcode="LS1 4AP", nhs_number=NHS)
    events = [
        {"source_system": "health-ed", "source_event_id": "ED-1", "agency": "health",
         "kind": "ed_injury_attendance", "occurred_at": (T0 - timedelta(days=3)).isoformat(),
         "child_id": "C-1042"},
    ]  # fmt: skip
    assert client.post("/v1/events", json=events).status_code == 201
    response = client.post(
        "/v1/referrals", json=unnamed("Samuel", postcode="LS1 4AP", school="Hill Primary")
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["resolution"]["outcome"] == "possible_match"
    return body


def test_confirming_merges_rescores_and_undo_restores_exactly(
    client: TestClient, db: Engine
) -> None:
    body = _possible_match(client)
    referral_id, new_child = body["referral_id"], body["resolution"]["person_id"]
    task_id = body["resolution"]["task_id"]
    before = snapshot(db)
    assert before["referral_child"][referral_id] == new_child
    confirmed = client.post(
        f"/v1/identity-tasks/{task_id}/confirm", json={"note": "same school and address"}
    )
    assert confirmed.status_code == 200, confirmed.text
    decided = confirmed.json()
    merge_id = decided["merge_id"]
    assert decided["task"]["status"] == "confirmed" and merge_id
    assert referral_id in decided["rescored"]
    merged = snapshot(db)
    assert merged["referral_child"][referral_id] == "C-1042"
    assert merged["queue_child"][referral_id] == "C-1042"
    assert merged["referral_household"][referral_id] == "H-311"
    assert merged["records"][f"IDR-{referral_id}"] == "C-1042"
    # The rescored referral now reads the known child's history (the ED injury attendance).
    detail = client.get(f"/v1/referrals/{referral_id}").json()
    assert any(item["event_kind"] == "ed_injury_attendance" for item in detail["timeline"])
    with db.connect() as connection:
        scores = connection.execute(
            select(ScoreRow.id).where(ScoreRow.referral_id == referral_id)
        ).all()
    assert len(scores) == 2  # at intake, and after the merge
    assert "person.merged" in audit_actions(db, "C-1042")
    assert "identity.task_confirmed" in audit_actions(db, task_id)

    undone = client.post(f"/v1/person-merges/{merge_id}/undo", json={"reason": "not them"})
    assert undone.status_code == 200, undone.text
    assert referral_id in undone.json()["rescored"]
    assert snapshot(db) == before
    assert "person.merge_undone" in audit_actions(db, "C-1042")
    with db.connect() as connection:
        merge = connection.execute(select(PersonMergeRow)).one()
    assert merge.undone_at is not None
    again = client.post(f"/v1/person-merges/{merge_id}/undo", json={"reason": "twice"})
    assert again.status_code == 409


def test_people_s_roles_only(client: TestClient, db: Engine, settings: Settings) -> None:
    body = _possible_match(client)
    task_id = body["resolution"]["task_id"]
    for headers in (
        user_headers(settings, "researcher"),
        key_headers(settings.database_url, REFERRAL_EXAMPLE["source_system"]),
    ):
        assert client.get("/v1/identity-tasks", headers=headers).status_code == 403
        assert client.get(f"/v1/identity-tasks/{task_id}", headers=headers).status_code == 403
        for action in ("confirm", "reject"):
            response = client.post(
                f"/v1/identity-tasks/{task_id}/{action}", json={"note": "x"}, headers=headers
            )
            assert response.status_code == 403
        response = client.post("/v1/person-merges/PM-1/undo", json={"reason": "x"}, headers=headers)
        assert response.status_code == 403
    practitioner = user_headers(settings, "practitioner")
    response = client.post(
        f"/v1/identity-tasks/{task_id}/confirm", json={"note": "NHS number"}, headers=practitioner
    )
    assert response.status_code == 200
    with db.connect() as connection:
        task = connection.execute(select(IdentityTaskRow)).one()
    assert task.status == "confirmed" and task.decided_by and task.note == "NHS number"


def test_a_note_is_required_to_confirm_and_to_reject(client: TestClient) -> None:
    task_id = _possible_match(client)["resolution"]["task_id"]
    for action in ("confirm", "reject"):
        response = client.post(f"/v1/identity-tasks/{task_id}/{action}", json={})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "note"


def test_a_retry_gets_the_same_answer(client: TestClient, db: Engine) -> None:
    known_child(client)
    body = unnamed("Samm")
    key = {"Idempotency-Key": "retry-1"}
    first = client.post("/v1/referrals", json=body, headers=key)
    replayed = client.post("/v1/referrals", json=body, headers=key)
    resent = client.post("/v1/referrals", json=body)
    assert first.status_code == 201 and replayed.status_code == 201
    assert replayed.json() == first.json()
    assert resent.status_code == 200, resent.text
    assert resent.json()["resolution"] == first.json()["resolution"]
    with db.connect() as connection:
        count = connection.execute(select(IdentityRecordRow.record_id)).all()
    assert len(count) == 2  # the known child's referral and this one, once


def test_new_details_make_a_new_child_and_household(client: TestClient, db: Engine) -> None:
    known_child(client)
    response = client.post("/v1/referrals", json=unnamed("Zed", family="Other"))
    assert response.status_code == 201, response.text
    resolution = response.json()["resolution"]
    assert resolution["outcome"] == "new" and resolution["task_id"] is None
    households = _rows(db, ReferralRow.household_id, ReferralRow.referral_id)
    assert households[response.json()["referral_id"]] not in ("H-311", None)


def test_without_a_linker_the_referral_is_stored_and_a_person_checks(
    settings: Settings,
    admin: dict[str, str],
    scorer: Scorer,
    db: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = FakeResolver(fail=True)
    with caplog.at_level(logging.ERROR):
        for client in _client(
            settings, admin, scorer_loader=Switch(scorer), identity_resolver=broken
        ):
            known_child(client)
            response = client.post("/v1/referrals", json=unnamed("Samm", nhs_number=NHS))
            assert response.status_code == 201, response.text
            resolution = response.json()["resolution"]
            assert resolution["outcome"] == "new" and resolution["task_id"]
            task = client.get(f"/v1/identity-tasks/{resolution['task_id']}").json()
            assert task["linker_unavailable"] and task["candidate_person_id"] is None
            confirm = client.post(
                f"/v1/identity-tasks/{resolution['task_id']}/confirm", json={"note": "x"}
            )
            assert confirm.status_code == 409
    logged = caplog.text
    assert "RuntimeError" in logged
    for personal in ("Samm", "Doe", NHS, REFERRAL_EXAMPLE["child"]["date_of_birth"]):
        assert personal not in logged


@pytest.mark.parametrize(
    ("child", "field"),
    [
        ({"given_name": None}, "child.given_name"),
        ({"date_of_birth": None}, "child.date_of_birth"),
        ({"nhs_number": "9434765918"}, "child.nhs_number"),
        ({"nhs_number": "12345"}, "child.nhs_number"),
        ({"postcode": "not a postcode"}, "child.postcode"),
        ({"child_id": "C-1"}, "child.household_id"),
    ],
)
def test_details_are_checked_with_precise_errors(
    client: TestClient, child: dict[str, Any], field: str
) -> None:
    body = unnamed("Sam")
    body["child"] = {k: v for k, v in (body["child"] | child).items() if v is not None}
    response = client.post("/v1/referrals", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


# --- the pages ---------------------------------------------------------------------------------


def test_the_task_page_shows_the_evidence_and_two_equal_choices(
    client: TestClient, settings: Settings, db: Engine
) -> None:
    body = _possible_match(client)
    task_id, referral_id = body["resolution"]["task_id"], body["referral_id"]
    page = TestClient(client.app, follow_redirects=False, headers={"Accept": "text/html"})
    sign_in_page(page, settings, "practitioner")
    listed = page.get("/identity-tasks")
    assert listed.status_code == 200 and task_id in listed.text
    shown = page.get(f"/identity-tasks/{task_id}")
    assert shown.status_code == 200
    html = shown.text
    assert "60%" in html and "Samuel" in html and "Hill Primary" in html
    assert '<th scope="row">Given name</th>' in html and "Different" in html
    buttons = re.findall(
        r'<button type="submit" name="decision" value="(\w+)" class="([^"]+)"', html
    )
    assert sorted(buttons) == [("confirm", "secondary-button"), ("reject", "secondary-button")]
    assert "checked" not in html  # neither answer is chosen for the practitioner
    referral_page = page.get(f"/referrals/{referral_id}")
    assert f"/identity-tasks/{task_id}" in referral_page.text
    token = csrf_of(html)
    missing = page.post(
        f"/identity-tasks/{task_id}/decide", data={"decision": "confirm", "csrf_token": token}
    )
    assert missing.status_code == 422 and "Say what your decision rests on" in missing.text
    done = page.post(
        f"/identity-tasks/{task_id}/decide",
        data={"decision": "reject", "note": "different school records", "csrf_token": token},
    )
    assert done.status_code == 303 and done.headers["location"] == f"/referrals/{referral_id}"
    assert "not the same child" in page.get(f"/referrals/{referral_id}").text
    assert "identity.task_rejected" in audit_actions(db, task_id)


def test_researchers_cannot_open_the_identity_pages(client: TestClient, settings: Settings) -> None:
    task_id = _possible_match(client)["resolution"]["task_id"]
    page = TestClient(client.app, follow_redirects=False, headers={"Accept": "text/html"})
    sign_in_page(page, settings, "researcher")
    assert page.get("/identity-tasks").status_code == 403
    assert page.get(f"/identity-tasks/{task_id}").status_code == 403


def test_a_referral_system_reads_how_its_child_was_resolved(
    client: TestClient, settings: Settings
) -> None:
    known_child(client)
    key = key_headers(settings.database_url, REFERRAL_EXAMPLE["source_system"])
    body = unnamed("Samm") | {"source_system": REFERRAL_EXAMPLE["source_system"]}
    response = client.post("/v1/referrals", json=body, headers=key)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert "reasons" not in receipt  # the receipt only
    assert receipt["resolution"]["outcome"] == "linked"
    assert receipt["resolution"]["person_id"] == "C-1042"


class _RacingResolver(FakeResolver):
    """While resolving the first referral, another intake stores the same new child first."""

    def __init__(self) -> None:
        super().__init__()
        self.race: Any = None

    def resolve(self, record: Any, known: Any) -> Any:
        """Let the racing intake run once, in the middle of the first resolution."""
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().resolve(record, known)


def _intake_into(replies: list[Any], receive: Any, state: Any, referral: Any) -> None:
    replies.append(receive(state, referral=referral, actor="admin", idempotency_key=None))


def test_two_intakes_of_one_unknown_child_at_once_make_one_child(
    migrated_url: str, tmp_path: Path, scorer: Scorer
) -> None:
    from service.intake import receive_referral
    from triage.schema import ReferralIn

    settings = Settings(
        var_dir=tmp_path, database_url=migrated_url, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m"
    )
    admin = user_headers(settings, "admin")
    db = make_engine(migrated_url)
    resolver = _RacingResolver()
    replies: list[Any] = []
    for client in _client(
        settings, admin, scorer_loader=Switch(scorer), identity_resolver=resolver
    ):
        state = client.app.state.service  # type: ignore[attr-defined]
        other = ReferralIn.model_validate(unnamed("Robin"))
        resolver.race = partial(_intake_into, replies, receive_referral, state, other)
        response = client.post("/v1/referrals", json=unnamed("Robin"))
        assert response.status_code == 201, response.text
        assert replies, "the racing intake ran"
        first = replies[0].body["resolution"]
        assert first["outcome"] == "new"
        resolution = response.json()["resolution"]
        # Resolved again once the other intake's child was stored: the same child, not a twin.
        assert resolution["outcome"] == "linked"
        assert resolution["person_id"] == first["person_id"]
        with db.connect() as connection:
            robins = connection.scalars(
                select(ReferralRow.child_id).where(
                    ReferralRow.referral_id.in_(
                        [response.json()["referral_id"], replies[0].body["referral_id"]]
                    )
                )
            ).all()
        assert set(robins) == {first["person_id"]}
    db.dispose()
