"""Identity resolution end to end with the real linker (issue 21's "done when"): the service
holds ``triage.identity.default_model()``, as it does in production when no model is passed.

A referral with a misspelt name and no child id joins the right child's history (the reply,
the store, the queue, the referral page and its reasons); a twin, born the same day with the
same surname at the same address, is never joined to their sibling."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from access_helpers import sign_in_page
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
from sqlalchemy import Engine, select

from api.app import create_app
from models.scorer import Scorer
from triage.settings import Settings
from triage.store import IdentityTaskRow, ReferralRow

DETAILS = {"postcode": "LS6 2AB", "sex": "male"}


@pytest.fixture
def client(settings: Settings, admin: dict[str, str], scorer: Scorer) -> Iterator[TestClient]:
    """The app as production builds it (no resolver passed: the default identity model)."""
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    with TestClient(app, raise_server_exceptions=False, headers=admin) as client:
        yield client


def _known(client: TestClient, days: int) -> str:
    """A referral naming C-1042 (Sam Doe, born 2014-06-01) ``days`` after T0."""
    body = referral(received_at=T0 + timedelta(days=days))
    body["child"] |= DETAILS
    response = client.post("/v1/referrals", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["referral_id"])


def _unnamed(given: str, days: int) -> dict[str, Any]:
    """A referral for a child with details but no ids, ``days`` after T0."""
    body = referral(received_at=T0 + timedelta(days=days))
    body["child"] = {
        "given_name": given,
        "family_name": "Doe",
        "date_of_birth": body["child"]["date_of_birth"],
    } | DETAILS
    return body


def test_a_misspelt_name_joins_the_right_child_s_history_with_the_real_linker(
    client: TestClient, db: Engine, settings: Settings
) -> None:
    earlier = [_known(client, days) for days in (0, 20)]
    response = client.post("/v1/referrals", json=_unnamed("Samm", 40))
    assert response.status_code == 201, response.text
    body = response.json()
    resolution = body["resolution"]
    assert resolution["outcome"] == "linked", resolution
    assert resolution["person_id"] == "C-1042"
    assert resolution["match_probability"] >= 0.95
    with db.connect() as connection:
        child = connection.scalar(
            select(ReferralRow.child_id).where(ReferralRow.referral_id == body["referral_id"])
        )
    assert child == "C-1042"
    queue = client.get("/v1/queue").json()
    [entry] = [e for e in queue["items"] if e["referral_id"] == body["referral_id"]]
    assert entry["child_id"] == "C-1042"
    detail = client.get(f"/v1/referrals/{body['referral_id']}").json()
    timeline = {item["record_id"] for item in detail["timeline"]}
    assert set(earlier) <= timeline
    reasons = {r["signal"]: r for r in detail["score"]["reasons"]}
    assert reasons["prior_referrals_child_all"]["value"] == 2
    assert set(earlier) <= set(reasons["prior_referrals_child_all"]["record_ids"])
    page = TestClient(client.app, follow_redirects=False, headers={"Accept": "text/html"})
    sign_in_page(page, settings, "practitioner")
    html = page.get(f"/referrals/{body['referral_id']}").text
    assert "<dd>Sam Doe (C-1042)</dd>" in html  # the child on record, not the misspelling


def test_a_twin_is_never_joined_to_their_sibling(client: TestClient, db: Engine) -> None:
    _known(client, 0)
    response = client.post("/v1/referrals", json=_unnamed("Alex", 10))
    assert response.status_code == 201, response.text
    resolution = response.json()["resolution"]
    assert resolution["outcome"] in {"new", "possible_match"}, resolution
    assert resolution["person_id"] != "C-1042"
    with db.connect() as connection:
        child = connection.scalar(
            select(ReferralRow.child_id).where(
                ReferralRow.referral_id == response.json()["referral_id"]
            )
        )
        tasks = connection.scalars(select(IdentityTaskRow.status)).all()
    assert child != "C-1042"
    assert all(status == "open" for status in tasks)


def test_a_school_s_record_with_a_misspelt_name_joins_the_child_with_the_real_linker(
    client: TestClient, db: Engine
) -> None:
    referral_id = _known(client, 40)
    sent = {
        "source_system": "school-mis",
        "source_event_id": "ATT-77",
        "agency": "school",
        "kind": "absence_concern",
        "occurred_at": (T0 + timedelta(days=10)).isoformat(),
        "recorded_at": (T0 + timedelta(days=12)).isoformat(),
        "child": {"given_name": "Samm", "family_name": "Doe", "date_of_birth": "2014-06-01"}
        | DETAILS,
    }
    response = client.post("/v1/events", json=sent)
    assert response.status_code == 201, response.text
    [item] = response.json()["items"]
    assert item["resolution"]["outcome"] == "linked", item
    assert item["resolution"]["person_id"] == "C-1042"
    assert response.json()["rescored"] == [referral_id]
    detail = client.get(f"/v1/referrals/{referral_id}").json()
    assert item["event_id"] in {entry["record_id"] for entry in detail["timeline"]}
    twin = sent | {"source_event_id": "ATT-78", "child": sent["child"] | {"given_name": "Alex"}}
    response = client.post("/v1/events", json=twin)
    assert response.status_code == 201, response.text
    [item] = response.json()["items"]
    assert item["resolution"]["person_id"] != "C-1042", item
