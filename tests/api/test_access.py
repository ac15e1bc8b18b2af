"""Access control: every route with every role and with no credentials; object-level checks."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from access_helpers import PASSWORD, bearer, key_headers, user_headers
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from pydantic import SecretStr
from sqlalchemy import select

from api.app import create_app
from api.deps import ROLES
from triage.accounts import revoke_key
from triage.schema import REFERRAL_EXAMPLE
from triage.security import issue_user_token
from triage.settings import Settings
from triage.store import AuditEventRow, UserRow, make_engine, session_factory

SYSTEM_A = REFERRAL_EXAMPLE["source_system"]
SYSTEM_B = "school-safeguarding"

# Who may call each route: the whole access policy in one table. ``None`` is no credentials.
POLICY: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/auth/token"): {*ROLES, None},
    ("GET", "/v1/health"): {*ROLES, None},
    ("POST", "/v1/referrals"): {"referrer", "admin"},
    ("GET", "/v1/referrals/{referral_id}"): {"practitioner", "manager", "admin"},
    ("GET", "/v1/referrals/{referral_id}/receipt"): {"referrer", "admin"},
    ("POST", "/v1/referrals/{referral_id}/decisions"): {"practitioner", "manager", "admin"},
    ("POST", "/v1/referrals/{referral_id}/reopen"): {"manager", "admin"},
    ("POST", "/v1/referrals/{referral_id}/disputes"): {"practitioner", "manager", "admin"},
    ("POST", "/v1/events"): {"referrer", "admin"},
    ("GET", "/v1/queue"): {"practitioner", "manager", "admin"},
    ("GET", "/v1/identity-tasks"): {"practitioner", "manager", "admin"},
    ("GET", "/v1/identity-tasks/{task_id}"): {"practitioner", "manager", "admin"},
    ("POST", "/v1/identity-tasks/{task_id}/confirm"): {"practitioner", "manager", "admin"},
    ("POST", "/v1/identity-tasks/{task_id}/reject"): {"practitioner", "manager", "admin"},
    ("POST", "/v1/person-merges/{merge_id}/undo"): {"practitioner", "manager", "admin"},
    ("GET", "/v1/model"): {"practitioner", "manager", "researcher", "admin"},
    ("POST", "/v1/admin/reload-model"): {"admin"},
    ("GET", "/v1/audit/fairness"): {"researcher", "admin"},
    ("GET", "/v1/research/referrals"): {"researcher", "admin"},
    ("GET", "/v1/research/decisions"): {"researcher", "admin"},
    # Multi-agency checks (issue 22): agencies reply through keys bound to their agency.
    ("GET", "/v1/referrals/{referral_id}/checks"): {"practitioner", "manager", "admin"},
    ("POST", "/v1/referrals/{referral_id}/checks"): {"practitioner", "manager", "admin"},
    ("GET", "/v1/checks/outstanding"): {"referrer"},
    ("POST", "/v1/checks/{request_id}/reply"): {"referrer", "practitioner", "manager", "admin"},
    ("POST", "/v1/referrals/{referral_id}/strategy-discussions"): {
        "practitioner",
        "manager",
        "admin",
    },
    ("POST", "/v1/referrals/{referral_id}/facts"): {"practitioner", "manager", "admin"},
    ("GET", "/v1/sign-offs"): {"manager", "admin"},
    ("POST", "/v1/referrals/{referral_id}/sign-off"): {"manager", "admin"},
    # Last: signing out revokes the caller's token for the routes after it.
    ("POST", "/v1/auth/logout"): {"practitioner", "manager", "researcher", "admin"},
}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app without a model (access does not depend on one), no credentials by default."""
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def credentials(settings: Settings) -> dict[str | None, dict[str, str]]:
    """Headers per role: a user for each person's role, an API key for ``referrer``."""
    headers: dict[str | None, dict[str, str]] = {None: {}}
    for role in ROLES:
        if role == "referrer":
            headers[role] = key_headers(settings.database_url, SYSTEM_A)
        else:
            headers[role] = user_headers(settings, role)
    return headers


def referral(source_system: str = SYSTEM_A, **overrides: Any) -> dict[str, Any]:
    """A valid referral body with a fresh business key."""
    body = copy.deepcopy(REFERRAL_EXAMPLE)
    body["source_system"] = source_system
    body["source_referral_id"] = f"ACC-{time.monotonic_ns()}"
    body.update(overrides)
    return body


def event(source_system: str = SYSTEM_A) -> dict[str, Any]:
    """A valid agency event for the example's household."""
    return {
        "source_system": source_system,
        "source_event_id": f"EV-{time.monotonic_ns()}",
        "agency": "police",
        "kind": "domestic_abuse_incident",
        "occurred_at": "2026-04-10T22:40:00Z",
        "household_id": REFERRAL_EXAMPLE["child"]["household_id"],
    }


def call(
    client: TestClient, method: str, path: str, headers: dict[str, str], referral_id: str
) -> int:
    """Call one route with a valid request; return the status."""
    url = (
        path.replace("{referral_id}", referral_id)
        .replace("{task_id}", "IDT-none")
        .replace("{merge_id}", "PM-none")
        .replace("{request_id}", "RFI-none")
    )
    bodies: dict[str, Any] = {
        "/v1/auth/token": {"username": "nobody", "password": "wrong password"},
        "/v1/referrals": referral(),
        "/v1/events": event(),
        "/v1/referrals/{referral_id}/decisions": {"decision": "assessment", "agreement": "agree"},
        "/v1/referrals/{referral_id}/reopen": {"reason": "new information"},
        "/v1/referrals/{referral_id}/disputes": {"record_id": referral_id, "reason": "not ours"},
        "/v1/identity-tasks/{task_id}/confirm": {"note": "same NHS number"},
        "/v1/identity-tasks/{task_id}/reject": {"note": "twins"},
        "/v1/person-merges/{merge_id}/undo": {"reason": "wrong merge"},
        "/v1/referrals/{referral_id}/checks": {"agency": "police", "question": "Known?"},
        "/v1/checks/{request_id}/reply": {"outcome": "not_known"},
        "/v1/referrals/{referral_id}/strategy-discussions": {"held_at": "bad"},
        "/v1/referrals/{referral_id}/facts": {"facts": [{"kind": "child_seen", "value": "no"}]},
        "/v1/referrals/{referral_id}/sign-off": {"verdict": "sign_off"},
    }
    body = bodies.get(path)
    return client.request(method, url, headers=headers, json=body).status_code


def test_the_policy_names_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith("/v1")
    }
    assert routes == set(POLICY)


def test_every_route_admits_exactly_the_roles_it_names(
    client: TestClient, credentials: dict[str | None, dict[str, str]]
) -> None:
    referral_id = client.post(
        "/v1/referrals", json=referral(), headers=credentials["referrer"]
    ).json()["referral_id"]
    denied: list[str] = []
    for (method, path), allowed in POLICY.items():
        for who, headers in credentials.items():
            status = call(client, method, path, headers, referral_id)
            if who in allowed:
                ok = status not in (401, 403) or path == "/v1/auth/token"
            elif who is None:
                ok = status == 401
            else:
                ok = status == 403
            if not ok:
                denied.append(f"{method} {path} as {who}: {status}")
    assert denied == []


def test_no_credentials_and_bad_credentials_get_401_with_a_challenge(
    client: TestClient, settings: Settings
) -> None:
    for headers in (
        {},
        bearer("trk_not-a-key"),
        bearer("not-a-token"),
        bearer(issue_user_token("another secret", user_id="U-1")),
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
    ):
        response = client.get("/v1/queue", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorised"


def test_login_issues_a_token_that_expires_and_dies_with_the_user(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_headers(settings, "practitioner", username="pat")
    wrong = client.post("/v1/auth/token", json={"username": "pat", "password": "guess"})
    assert wrong.status_code == 401
    unknown = client.post("/v1/auth/token", json={"username": "nobody", "password": PASSWORD})
    assert unknown.status_code == 401
    signed_in = client.post("/v1/auth/token", json={"username": "pat", "password": PASSWORD})
    assert signed_in.status_code == 200
    token = signed_in.json()["access_token"]
    assert signed_in.json()["roles"] == ["practitioner"]
    assert client.get("/v1/queue", headers=bearer(token)).status_code == 200
    assert client.post("/v1/admin/reload-model", headers=bearer(token)).status_code == 403

    nine_hours_ago = int(time.time()) - 9 * 3600
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: nine_hours_ago)
        stale = client.post("/v1/auth/token", json={"username": "pat", "password": PASSWORD})
    assert client.get("/v1/queue", headers=bearer(stale.json()["access_token"])).status_code == 401

    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            session.scalars(select(UserRow).where(UserRow.username == "pat")).one().active = False
            session.commit()
            actions = [e.action for e in session.scalars(select(AuditEventRow))]
    finally:
        engine.dispose()
    assert client.get("/v1/queue", headers=bearer(token)).status_code == 401
    assert actions.count("auth.login_failed") == 2
    assert actions.count("auth.login") == 2


def test_a_referral_system_submits_and_reads_only_its_own(
    client: TestClient, settings: Settings
) -> None:
    a = key_headers(settings.database_url, SYSTEM_A)
    b = key_headers(settings.database_url, SYSTEM_B)
    mine = client.post("/v1/referrals", json=referral(SYSTEM_A), headers=a)
    assert mine.status_code == 201
    referral_id = mine.json()["referral_id"]
    assert client.post("/v1/referrals", json=referral(SYSTEM_B), headers=a).status_code == 403
    assert (
        client.post("/v1/events", json=[event(SYSTEM_A), event(SYSTEM_B)], headers=a).status_code
        == 403
    )
    assert client.post("/v1/events", json=event(SYSTEM_B), headers=b).status_code == 201

    receipt = client.get(f"/v1/referrals/{referral_id}/receipt", headers=a)
    assert receipt.status_code == 200
    assert set(receipt.json()) == {
        "referral_id", "source_system", "source_referral_id", "received_at", "status",
    }  # fmt: skip
    # Another system's referral is indistinguishable from one that does not exist.
    theirs = client.get(f"/v1/referrals/{referral_id}/receipt", headers=b)
    assert theirs.status_code == 404
    assert theirs.json() == client.get("/v1/referrals/R-nope/receipt", headers=b).json() | {
        "error": theirs.json()["error"]
    }
    # Keys never see the case view, the queue or the model.
    for path in (f"/v1/referrals/{referral_id}", "/v1/queue", "/v1/model"):
        assert client.get(path, headers=a).status_code == 403


def test_scopes_and_revocation_bind_a_key(client: TestClient, settings: Settings) -> None:
    write_only = key_headers(settings.database_url, SYSTEM_A, scopes=["referrals:write"])
    created = client.post("/v1/referrals", json=referral(), headers=write_only)
    assert created.status_code == 201
    referral_id = created.json()["referral_id"]
    assert client.post("/v1/events", json=event(), headers=write_only).status_code == 403
    receipt = client.get(f"/v1/referrals/{referral_id}/receipt", headers=write_only)
    assert receipt.status_code == 403

    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            received = session.scalars(
                select(AuditEventRow).where(AuditEventRow.action == "referral.received")
            ).one()
            assert received.actor.startswith("K-")
            assert revoke_key(session, key_id=received.actor)
            session.commit()
    finally:
        engine.dispose()
    assert client.post("/v1/referrals", json=referral(), headers=write_only).status_code == 401


def test_researchers_get_no_case_data(
    client: TestClient, credentials: dict[str | None, dict[str, str]]
) -> None:
    referral_id = client.post(
        "/v1/referrals", json=referral(), headers=credentials["referrer"]
    ).json()["referral_id"]
    researcher = credentials["researcher"]
    for path in (f"/v1/referrals/{referral_id}", f"/v1/referrals/{referral_id}/receipt"):
        response = client.get(path, headers=researcher)
        assert response.status_code == 403
        assert REFERRAL_EXAMPLE["child"]["given_name"] not in response.text
    assert client.get("/v1/queue", headers=researcher).status_code == 403
    assert client.get("/v1/model", headers=researcher).status_code == 200


def test_the_audit_actor_is_the_caller(
    client: TestClient, credentials: dict[str | None, dict[str, str]], settings: Settings
) -> None:
    referral_id = client.post(
        "/v1/referrals", json=referral(), headers=credentials["referrer"]
    ).json()["referral_id"]
    client.get(f"/v1/referrals/{referral_id}", headers=credentials["practitioner"])
    client.get("/v1/queue", headers=credentials["manager"])
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            by_action = {e.action: e.actor for e in session.scalars(select(AuditEventRow))}
            users = session.scalars(select(UserRow.user_id)).all()
    finally:
        engine.dispose()
    assert by_action["referral.received"].startswith("K-")
    assert by_action["referral.viewed"].startswith("U-")
    assert by_action["queue.viewed"].startswith("U-")
    assert by_action["referral.viewed"] != by_action["queue.viewed"]
    assert {by_action["referral.viewed"], by_action["queue.viewed"]} <= set(users)
    assert "anonymous" not in by_action.values()


def test_researchers_get_the_fairness_audit_pseudonymised_and_the_export_is_audited(
    settings: Settings,
) -> None:
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from models.fairness import AuditConfig, audit, to_document
    from service.champion import LoadedModel

    rng = np.random.default_rng(2)
    sex = rng.choice(["female", "male", "unknown"], 2000, p=[0.49, 0.5, 0.01])
    p = rng.beta(2, 6, 2000)
    y = (rng.random(2000) < p).astype(float)
    config = AuditConfig(attributes=("sex",), intersections=(), n_boot=10)
    quarter = rng.choice(["2026-Q1", "2026-Q2"], 2000)
    result = audit(y, p, pd.DataFrame({"sex": sex}), periods=quarter, config=config)
    meta = {"run_id": "run-1", "source": "/data", "data_fingerprint": "abc"}
    stored = to_document(result, meta=meta)
    loaded = LoadedModel(scorer=SimpleNamespace(version="referral-triage/7"), fairness=stored)
    app = create_app(settings, scorer_loader=lambda: loaded, score_backlog_on_start=False)
    with TestClient(app) as client:
        researcher = user_headers(settings, "researcher")
        body = client.get("/v1/audit/fairness", headers=researcher).json()
        stricter = client.get("/v1/audit/fairness?min_count=50", headers=researcher).json()
        assert client.get("/v1/audit/fairness?min_count=2", headers=researcher).status_code == 422
        # A document logged before disclosure control is refused, not served half-protected.
        structure = stored.pop("structure")
        stored["generated_at"] = "2026-01-01T00:00:00+00:00"
        assert client.get("/v1/audit/fairness", headers=researcher).status_code == 409
    assert set(body["meta"]) == {"n", "labels"} and "structure" not in body
    # The small group is withheld, and so is a second one: else N minus the other is its size.
    withheld = {r["group"] for r in body["suppressed"] if r["grouping"] == "sex"}
    assert "unknown" in withheld and len(withheld) == 2
    assert all("n" not in r for r in body["suppressed"])
    assert body["disclosure"]["min_count"] == 10 and stricter["disclosure"]["min_count"] == 50
    assert body["schema_version"] == "2.1.0" and body["summary_measures"]
    # Every metric by quarter, with intervals and a test for change; small cells withheld.
    quarters = body["by_quarter"]
    for metric in ("auc", "calibration_gap", "mean_score", "fnr_at_10", "fpr_at_10"):
        overall = [r for r in quarters if r["metric"] == metric and r["grouping"] == "overall"]
        assert len(overall) == 2 and all(r["lower"] <= r["upper"] for r in overall), metric
    assert {r["method"] for r in body["quarter_change"]} == {"chi_square", "bootstrap_wald"}
    assert not {r["group"] for r in quarters if r["grouping"] == "sex"} & withheld
    for row in quarters:
        assert row.get("withheld") or row["numerator"] is None or row["numerator"] >= 10
    shown = [m for m in body["metrics"] if m["grouping"] == "overall" and m["numerator"]]
    assert shown and all(m["numerator"] >= 10 for m in shown)
    small = [m for m in stricter["metrics"] if m.get("withheld")]
    assert len(small) > len([m for m in body["metrics"] if m.get("withheld")])
    assert stored["meta"]["run_id"] == "run-1" and structure["atoms"]
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        exports = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "export.fairness_audit")
        ).all()
    engine.dispose()
    assert [(e.model_version, e.payload["min_count"]) for e in exports] == [
        ("referral-triage/7", 10),
        ("referral-triage/7", 50),
    ]


def test_researchers_see_referrals_only_pseudonymised(
    client: TestClient, credentials: dict[str | None, dict[str, str]], settings: Settings
) -> None:
    body = referral(narrative="Uncle reports bruising; Sam Doe lives at 4 Elm Row.")
    stored = client.post("/v1/referrals", json=body, headers=credentials["referrer"]).json()
    second = referral()  # the same child again
    client.post("/v1/referrals", json=second, headers=credentials["referrer"])
    decided = client.post(
        f"/v1/referrals/{stored['referral_id']}/decisions",
        json={
            "decision": "assessment",
            "agreement": "should_be_higher",
            "reason_codes": ["sam_doe_lives_at_elm_row", "professional_judgement"],
            "rationale": "Sam Doe said more on the phone.",
        },
        headers=credentials["practitioner"],
    )
    assert decided.status_code == 201
    response = client.get("/v1/research/referrals", headers=credentials["researcher"])
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 2 and len(page["items"]) == 2
    text = response.text
    child = body["child"]
    for secret in (
        child["given_name"],
        child["family_name"],
        child["date_of_birth"],
        child["child_id"],
        child["household_id"],
        stored["referral_id"],
        body["source_referral_id"],
        "Elm Row",
        body["received_at"][:10],
    ):
        assert secret not in text, secret
    # Both arrive at the same moment, so their order is not fixed: the decided one is "first".
    first, again = sorted(page["items"], key=lambda item: item["decision"] is None)
    assert first["child"] == again["child"] and first["child"].startswith("child-")
    assert first["referral"] != again["referral"]
    assert first["received_month"] == body["received_at"][:7]
    # Free text smuggled in a reason code reads "other"; groups are for the suppressed route.
    assert first["reason_codes"] == ["other", "professional_judgement"]
    assert "phone" not in text and "elm_row" not in text
    assert not {"sex", "ethnicity", "disability", "age_band", "deprivation_band"} & set(first)
    # Another service key gives other pseudonyms: they are keyed, not plain hashes.
    other = settings.model_copy(update={"secret_key": SecretStr("another-key-entirely")})
    app = create_app(other, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app) as second_client:
        token = user_headers(other, "researcher")
        elsewhere = second_client.get("/v1/research/referrals", headers=token).json()
    assert elsewhere["items"][0]["child"] != first["child"]


def test_research_decisions_suppress_small_cells_and_are_audited(
    client: TestClient, credentials: dict[str | None, dict[str, str]], settings: Settings
) -> None:
    ids = []
    for _ in range(12):
        ids.append(
            client.post("/v1/referrals", json=referral(), headers=credentials["referrer"]).json()[
                "referral_id"
            ]
        )
    for n, referral_id in enumerate(ids):
        disagree = n < 2
        decision = {
            "decision": "assessment",
            "agreement": "should_be_higher" if disagree else "agree",
            "rationale": "more history" if disagree else "",
        }
        response = client.post(
            f"/v1/referrals/{referral_id}/decisions",
            json=decision,
            headers=credentials["practitioner"],
        )
        assert response.status_code == 201
    researcher = credentials["researcher"]
    rows = client.get("/v1/research/decisions?by=sex", headers=researcher).json()["rows"]
    assert [(r["group"], r["band"], r["suppressed"]) for r in rows] == [("male", "Unscored", True)]
    assert rows[0]["decisions"] is None and rows[0]["should_be_higher"] is None
    assert client.get("/v1/research/decisions?by=name", headers=researcher).status_code == 422
    assert client.get("/v1/research/decisions?min_count=3", headers=researcher).status_code == 422
    past = client.get("/v1/research/decisions?quarter=2020-Q1", headers=researcher).json()
    assert past["quarter"] == "2020-Q1" and past["rows"] == []
    for bad in ("2026-Q5", "2026-04", "2026-Q1-"):
        response = client.get(f"/v1/research/decisions?quarter={bad}", headers=researcher)
        assert response.status_code == 422
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        actions = session.scalars(
            select(AuditEventRow.action).where(AuditEventRow.action.like("export.research%"))
        ).all()
    engine.dispose()
    assert actions == ["export.research_decisions"] * 2
