"""Multi-agency checks through the API: requests and agencies' replies, strategy discussions,
facts, the sign-off gate on closing decisions, roles, precise 422s and the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from access_helpers import key_headers, user_headers
from api_support import T0, referral
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.app import create_app
from service.checks import check_timeline_items, outstanding_checks
from service.signoff import sign_off_required
from triage.settings import Settings
from triage.store import AuditEventRow, make_engine, session_factory

SOURCE = "police-mash-feed"
NOW = datetime.now(UTC)
STRATEGY = {
    "held_at": (NOW - timedelta(hours=1)).isoformat(),
    "attendees": [
        {"agency": "social_care", "role": "Team manager"},
        {"agency": "police", "role": "Detective Sergeant"},
        {"agency": "health"},
    ],
    "outcome": "section_47_enquiry",
    "summary": "Joint visit tomorrow.",
}


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """An engine for reading what the service stored."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def app(settings: Settings) -> Iterator[TestClient]:
    """The app without a model (checks do not depend on one), no credentials by default."""
    application = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(application, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def people(settings: Settings) -> dict[str, dict[str, str]]:
    """Headers: a practitioner, two managers, a researcher, and agency keys."""
    return {
        "practitioner": user_headers(settings, "practitioner"),
        "manager": user_headers(settings, "manager"),
        "other_manager": user_headers(settings, "manager"),
        "researcher": user_headers(settings, "researcher"),
        "admin": user_headers(settings, "admin"),
        "police_key": key_headers(settings.database_url, "police-niche", agencies=["police"]),
        "health_key": key_headers(settings.database_url, "nhs-spine", agencies=["health"]),
        "no_reply_scope": key_headers(
            settings.database_url,
            "nhs-other",
            scopes=["events:write"],
            agencies=["health"],
        ),
    }


def submit(app: TestClient, people: dict[str, dict[str, str]], **overrides: Any) -> str:
    """A new open referral (received now unless told otherwise); its id."""
    body = referral(received_at=overrides.pop("received_at", NOW - timedelta(hours=2)))
    body |= overrides
    response = app.post("/v1/referrals", json=body, headers=people["admin"])
    assert response.status_code == 201, response.text
    return str(response.json()["referral_id"])


def in_queue(app: TestClient, people: dict[str, dict[str, str]], referral_id: str) -> bool:
    """Whether the referral is in the open queue."""
    items = app.get("/v1/queue?limit=100", headers=people["practitioner"]).json()["items"]
    return referral_id in {item["referral_id"] for item in items}


def errors_of(response: Any) -> dict[str, str]:
    """A 422's errors as field → reason."""
    assert response.status_code == 422, response.text
    return {error["field"]: error["reason"] for error in response.json()["errors"]}


def nfa(app: TestClient, headers: dict[str, str], referral_id: str, rationale: str = "") -> Any:
    """Post a no-further-action decision."""
    body = {"decision": "no_further_action", "agreement": "agree", "rationale": rationale}
    return app.post(f"/v1/referrals/{referral_id}/decisions", json=body, headers=headers)


def test_an_agency_key_answers_only_its_own_agencies_requests(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    rid = submit(app, people)
    asked = app.post(
        f"/v1/referrals/{rid}/checks",
        json={"agency": "gp", "question": "Is the child registered and seen recently?"},
        headers=people["practitioner"],
    )
    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert request["state"] == "awaiting" and request["reply"] is None
    due = datetime.fromisoformat(request["due_at"])
    assert (
        timedelta(hours=23)
        < due - datetime.fromisoformat(request["requested_at"])
        <= (timedelta(hours=24))
    )
    # A second request to the same agency while the first awaits its reply: 409.
    again = app.post(
        f"/v1/referrals/{rid}/checks",
        json={"agency": "gp", "question": "Again?"},
        headers=people["practitioner"],
    )
    assert again.status_code == 409
    # The police key cannot see or answer a GP request (404, not 403: ids are not probed).
    url = f"/v1/checks/{request['request_id']}/reply"
    reply = {"outcome": "known_with_concerns", "summary": "Missed two immunisations."}
    assert app.post(url, json=reply, headers=people["police_key"]).status_code == 404
    police_list = app.get("/v1/checks/outstanding", headers=people["police_key"]).json()
    assert police_list["items"] == []
    # A key without the checks:reply scope is refused outright.
    assert app.post(url, json=reply, headers=people["no_reply_scope"]).status_code == 403
    # The health key (GP practices share through health) sees it with the child to find.
    health_list = app.get("/v1/checks/outstanding", headers=people["health_key"]).json()
    assert [item["request_id"] for item in health_list["items"]] == [request["request_id"]]
    assert health_list["items"][0]["child"]["date_of_birth"] == "2014-06-01"
    answered = app.post(url, json=reply, headers=people["health_key"])
    assert answered.status_code == 200, answered.text
    assert answered.json()["reply"]["channel"] == "agency"
    assert answered.json()["state"] == "replied"
    # The first reply wins.
    assert app.post(url, json=reply, headers=people["health_key"]).status_code == 409
    with session_factory(db)() as session:
        assert outstanding_checks(session, [rid]) == {rid: 0}
        kinds = [(item["kind"], item["words"]) for item in check_timeline_items(session, [rid])]
    assert kinds == [
        ("check", "Information requested from GP practice"),
        ("check", "GP practice replied: Known, with concerns"),
    ]


def test_a_practitioner_records_a_reply_and_the_checks_read_back(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    rid = submit(app, people)
    for agency in ("police", "school"):
        made = app.post(
            f"/v1/referrals/{rid}/checks",
            json={"agency": agency, "question": "Anything known?"},
            headers=people["practitioner"],
        )
        assert made.status_code == 201
    police = app.get(f"/v1/referrals/{rid}/checks", headers=people["practitioner"]).json()
    assert police["outstanding"] == 2 and police["overdue"] == 0
    request_id = police["requests"][0]["request_id"]
    recorded = app.post(
        f"/v1/checks/{request_id}/reply",
        json={"outcome": "not_known"},
        headers=people["practitioner"],
    )
    assert recorded.status_code == 200
    assert recorded.json()["reply"]["channel"] == "recorded"
    with session_factory(db)() as session:
        assert outstanding_checks(session, [rid, "R-none"]) == {rid: 1, "R-none": 0}
    assert app.get(f"/v1/referrals/{rid}/checks", headers=people["researcher"]).status_code == 403


def test_422s_name_the_field_and_the_reason(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    rid = submit(app, people)
    who = people["practitioner"]
    past = (NOW - timedelta(hours=1)).isoformat()
    far = (NOW + timedelta(days=30)).isoformat()
    checks_url = f"/v1/referrals/{rid}/checks"
    assert errors_of(
        app.post(
            checks_url, json={"agency": "police", "question": "x", "due_at": past}, headers=who
        )
    ) == {"due_at": "is not in the future"}
    assert errors_of(
        app.post(checks_url, json={"agency": "police", "question": "x", "due_at": far}, headers=who)
    ) == {"due_at": "is more than 14 days ahead"}
    assert "due_at" in errors_of(
        app.post(
            checks_url,
            json={"agency": "police", "question": "x", "due_at": "2026-12-09T10:00:00"},
            headers=who,
        )
    )
    assert set(
        errors_of(app.post(checks_url, json={"agency": "fire", "question": " "}, headers=who))
    ) == {
        "agency",
        "question",
    }
    missing_health = STRATEGY | {"attendees": STRATEGY["attendees"][:2]}
    reasons = errors_of(
        app.post(f"/v1/referrals/{rid}/strategy-discussions", json=missing_health, headers=who)
    )
    assert list(reasons) == ["attendees"] and "missing: health" in reasons["attendees"]
    before = STRATEGY | {"held_at": (NOW - timedelta(days=3)).isoformat()}
    assert errors_of(
        app.post(f"/v1/referrals/{rid}/strategy-discussions", json=before, headers=who)
    ) == {"held_at": "is before the referral was received"}
    facts_url = f"/v1/referrals/{rid}/facts"
    assert errors_of(
        app.post(
            facts_url, json={"facts": [{"kind": "child_seen_alone", "value": "yes"}]}, headers=who
        )
    ) == {"facts.0.value": "the child is not recorded as seen: record child_seen yes first"}
    bad = {
        "facts": [
            {"kind": "child_seen", "value": "maybe"},
            {"kind": "carer_account", "value": "corroborated"},
        ]
    }
    reasons = errors_of(app.post(facts_url, json=bad, headers=who))
    assert reasons == {
        "facts.0.value": "child_seen takes one of: yes, no",
        "facts.1.note": "summarise the account",
    }
    twice = {"facts": [{"kind": "child_seen", "value": "yes"}] * 2}
    assert "facts" in errors_of(app.post(facts_url, json=twice, headers=who))
    request_id = app.post(
        checks_url, json={"agency": "police", "question": "Known?"}, headers=who
    ).json()["request_id"]
    assert errors_of(
        app.post(
            f"/v1/checks/{request_id}/reply",
            json={"outcome": "known_with_concerns"},
            headers=people["police_key"],
        )
    ) == {"summary": "say what the concerns are when the outcome reports concerns"}
    # Seen alone in the same batch as seen: fine.
    both = {
        "facts": [
            {"kind": "child_seen", "value": "yes"},
            {"kind": "child_seen_alone", "value": "yes"},
            {"kind": "carer_account", "value": "not_corroborated", "note": "Says a fall."},
        ]
    }
    stored = app.post(facts_url, json=both, headers=who)
    assert stored.status_code == 201, stored.text
    assert [f["words"] for f in stored.json()["facts"]] == [
        "Child seen",
        "Child seen alone",
        "Parent's or carer's account: others do not corroborate it",
    ]
    with session_factory(db)() as session:
        items = check_timeline_items(session, [rid])
    assert [item["kind"] for item in items].count("fact") == 3
    assert {"kind", "at", "record_id", "words", "referral_id", "signals"} <= set(items[0])


def test_closing_a_physical_abuse_concern_unseen_waits_for_a_manager(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    rid = submit(app, people)  # physical abuse, no earlier referral
    with session_factory(db)() as session:
        assert sign_off_required(session, rid, "assessment") == []
        assert len(sign_off_required(session, rid, "no_further_action")) == 1
    # Without a rationale: 422 on the rationale, nothing recorded.
    refused = nfa(app, people["practitioner"], rid)
    assert "physical-abuse concern" in errors_of(refused)["rationale"]
    assert in_queue(app, people, rid)
    held = nfa(app, people["practitioner"], rid, "Seen by the school nurse; a fall in PE.")
    assert held.status_code == 201, held.text
    sign_off = held.json()["sign_off"]
    assert sign_off["status"] == "awaiting"
    assert in_queue(app, people, rid)  # stays in the queue until a manager signs off
    listed = app.get("/v1/sign-offs", headers=people["manager"]).json()["items"]
    assert [item["referral_id"] for item in listed] == [rid]
    assert listed[0]["rationale"] == "Seen by the school nurse; a fall in PE."
    url = f"/v1/referrals/{rid}/sign-off"
    # Practitioners cannot sign off; a manager must say why they send it back.
    assert (
        app.post(url, json={"verdict": "sign_off"}, headers=people["practitioner"]).status_code
        == 403
    )
    assert errors_of(app.post(url, json={"verdict": "send_back"}, headers=people["manager"])) == {
        "note": "say why the decision is sent back"
    }
    back = app.post(
        url,
        json={"verdict": "send_back", "note": "See the child first."},
        headers=people["manager"],
    )
    assert back.status_code == 200 and back.json()["status"] == "sent_back"
    assert in_queue(app, people, rid)
    # Open again: the practitioner sees the child, and the same decision needs no sign-off.
    seen = app.post(
        f"/v1/referrals/{rid}/facts",
        json={"facts": [{"kind": "child_seen", "value": "yes"}]},
        headers=people["practitioner"],
    )
    assert seen.status_code == 201
    closed = nfa(app, people["practitioner"], rid, "Seen at home; the bruise fits a fall.")
    assert closed.status_code == 201 and closed.json()["sign_off"] is None
    assert not in_queue(app, people, rid)
    assert app.post(url, json={"verdict": "sign_off"}, headers=people["manager"]).status_code == 409


def test_a_manager_signs_off_a_repeat_referral_closed_without_checks(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    first = submit(app, people, concerns=["neglect"], received_at=NOW - timedelta(days=90))
    assert (
        app.post(
            f"/v1/referrals/{first}/decisions",
            json={"decision": "information_advice", "agreement": "agree", "rationale": "ok"},
            headers=people["practitioner"],
        ).status_code
        == 201
    )
    rid = submit(app, people, concerns=["neglect"])
    with session_factory(db)() as session:
        (reason,) = sign_off_required(session, rid, "information_advice")
    assert "repeat referral" in reason and "no agency check answered" in reason
    # The manager who decides cannot sign off their own decision.
    held = nfa(app, people["manager"], rid, "Support from the school is enough.")
    assert held.json()["sign_off"]["reasons"] == [reason]
    url = f"/v1/referrals/{rid}/sign-off"
    own = app.post(url, json={"verdict": "sign_off"}, headers=people["manager"])
    assert own.status_code == 409 and own.json()["error"]["code"] == "own_decision"
    signed = app.post(url, json={"verdict": "sign_off"}, headers=people["other_manager"])
    assert signed.status_code == 200 and signed.json()["status"] == "signed_off"
    assert not in_queue(app, people, rid)
    # A strategy discussion counts as a check: a third referral with one needs no sign-off.
    third = submit(app, people, concerns=["neglect"])
    made = app.post(
        f"/v1/referrals/{third}/strategy-discussions", json=STRATEGY, headers=people["practitioner"]
    )
    assert made.status_code == 201, made.text
    assert [a["agency_words"] for a in made.json()["attendees"]] == [
        "Children's social care",
        "Police",
        "Health (community and hospital)",
    ]
    with session_factory(db)() as session:
        assert sign_off_required(session, third, "no_further_action") == []
        items = check_timeline_items(session, [third])
    assert items[0]["kind"] == "strategy" and "Section 47 enquiry" in items[0]["words"]


def test_every_act_is_audited_without_the_words_typed(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    rid = submit(app, people)
    secret = "Mother says the father hit him with a belt"
    made = app.post(
        f"/v1/referrals/{rid}/checks",
        json={"agency": "police", "question": secret},
        headers=people["practitioner"],
    ).json()
    app.post(
        f"/v1/checks/{made['request_id']}/reply",
        json={"outcome": "known_with_concerns", "summary": secret},
        headers=people["police_key"],
    )
    app.post(f"/v1/referrals/{rid}/strategy-discussions", json=STRATEGY | {"summary": secret},
             headers=people["practitioner"])  # fmt: skip
    app.post(
        f"/v1/referrals/{rid}/facts",
        json={"facts": [{"kind": "carer_account", "value": "not_corroborated", "note": secret}]},
        headers=people["practitioner"],
    )
    nfa(app, people["practitioner"], rid, secret)
    app.post(f"/v1/referrals/{rid}/sign-off", json={"verdict": "send_back", "note": secret},
             headers=people["manager"])  # fmt: skip
    with session_factory(db)() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.entity_id == rid)).all()
    actions = [row.action for row in rows]
    for action in (
        "check.requested",
        "check.replied",
        "strategy.recorded",
        "facts.recorded",
        "signoff.requested",
        "signoff.sent_back",
    ):
        assert action in actions
    assert all(secret not in json.dumps(row.payload) for row in rows)
    assert all("belt" not in json.dumps(row.payload) for row in rows)


def test_t0_referrals_are_repeats_only_within_twelve_months(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    old = submit(app, people, concerns=["neglect"], received_at=T0 - timedelta(days=400))
    rid = submit(app, people, concerns=["neglect"], received_at=T0)
    with session_factory(db)() as session:
        assert sign_off_required(session, rid, "no_further_action") == []
        assert sign_off_required(session, old, "no_further_action") == []


def test_a_reopened_referral_supersedes_its_held_decision(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    rid = submit(app, people)
    held = nfa(app, people["practitioner"], rid, "A fall, says the school.")
    assert held.json()["sign_off"]["status"] == "awaiting"
    reopened = app.post(
        f"/v1/referrals/{rid}/reopen",
        json={"reason": "new police report"},
        headers=people["manager"],
    )
    assert reopened.status_code == 200, reopened.text
    # Open again: nothing to sign off, and the list leaves it out.
    url = f"/v1/referrals/{rid}/sign-off"
    stale = app.post(url, json={"verdict": "sign_off"}, headers=people["other_manager"])
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "reopened"
    assert app.get("/v1/sign-offs", headers=people["manager"]).json()["items"] == []
    decided = app.post(
        f"/v1/referrals/{rid}/decisions",
        json={"decision": "strategy_discussion", "agreement": "agree"},
        headers=people["practitioner"],
    )
    assert decided.status_code == 201 and decided.json()["sign_off"] is None
    assert not in_queue(app, people, rid)
    statuses = [
        s["status"]
        for s in app.get(f"/v1/referrals/{rid}/checks", headers=people["manager"]).json()[
            "sign_offs"
        ]
    ]
    assert statuses == ["superseded"]


def test_checks_made_for_another_referral_about_the_child_count(
    app: TestClient, people: dict[str, dict[str, str]], db: Engine
) -> None:
    first = submit(app, people, received_at=NOW - timedelta(hours=3))
    second = submit(app, people)  # the same child, an hour later: a repeat
    with session_factory(db)() as session:
        assert len(sign_off_required(session, second, "no_further_action")) == 2
    who = people["practitioner"]
    app.post(
        f"/v1/referrals/{first}/facts",
        json={"facts": [{"kind": "child_seen", "value": "yes"}]},
        headers=who,
    )
    request_id = app.post(
        f"/v1/referrals/{first}/checks",
        json={"agency": "police", "question": "Known?"},
        headers=who,
    ).json()["request_id"]
    app.post(f"/v1/checks/{request_id}/reply", json={"outcome": "not_known"}, headers=who)
    with session_factory(db)() as session:
        assert sign_off_required(session, second, "no_further_action") == []
    # A later "not seen" on either referral is the answer that counts.
    app.post(
        f"/v1/referrals/{second}/facts",
        json={"facts": [{"kind": "child_seen", "value": "no"}]},
        headers=who,
    )
    with session_factory(db)() as session:
        (reason,) = sign_off_required(session, second, "no_further_action")
    assert "not recorded as seen" in reason
