"""The checks pages without a browser: the referral page's section, each form's errors and
answers, the sign-off journey, roles and CSRF. In Chromium: tests/api/test_browser_checks.py."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from access_helpers import PASSWORD, csrf_of, key_headers, user_headers
from api_support import referral
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.app import create_app
from api.web.check_pages import LOCAL
from triage.settings import Settings
from triage.store import AuditEventRow, make_engine, session_factory
from triage.store.tables import CheckFactRow, CheckRequestRow, SignOffRow

_serial = itertools.count()
NOW = datetime.now(UTC)


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """An engine for reading what the pages stored."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def world(settings: Settings) -> Iterator[dict[str, Any]]:
    """The app (no model needed) with one open physical-abuse referral received an hour ago."""
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    admin = user_headers(settings, "admin")
    with TestClient(app, headers=admin) as api:
        body = referral(received_at=NOW - timedelta(hours=1))
        response = api.post("/v1/referrals", json=body)
        assert response.status_code == 201, response.text
        yield {"app": app, "api": api, "rid": response.json()["referral_id"]}


def page_client(app: Any, settings: Settings, role: str) -> TestClient:
    """A cookie-keeping client signed in through the form as a new user holding ``role``."""
    client = TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})
    username = f"checks-{role}-{next(_serial)}"
    user_headers(settings, role, username=username)
    form = client.get("/login")
    signed = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(form.text),
              "next": "/queue"},
    )  # fmt: skip
    assert signed.status_code == 303, signed.text
    return client


def post_form(client: TestClient, path: str, data: dict[str, Any]) -> Any:
    """Submit a page's form with the CSRF token of the page it is on."""
    form = client.get(path)
    assert form.status_code == 200, form.text
    return client.post(path, data={"csrf_token": csrf_of(form.text), **data})


def summary_links(html: str) -> list[tuple[str, str]]:
    """The error summary's links: (target id, words)."""
    block = html.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    return [(f, unescape(w)) for f, w in re.findall(r'<a href="#([^"]+)">([^<]+)</a>', block)]


def test_the_referral_page_shows_the_checks_and_links_to_each_form(
    world: dict[str, Any], settings: Settings
) -> None:
    client = page_client(world["app"], settings, "practitioner")
    html = client.get(f"/referrals/{world['rid']}").text
    assert 'id="checks-title"' in html
    assert html.index('id="checks-title"') < html.index('id="decision-title"')
    for link in ("checks/request", "strategy", "facts"):
        assert f'href="/referrals/{world["rid"]}/{link}"' in html
    assert "No agency has been asked yet." in html
    assert "Has the child been seen?" in html and "Not recorded yet" in html


def test_asking_an_agency_and_recording_its_reply(
    world: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = page_client(world["app"], settings, "practitioner")
    path = f"/referrals/{world['rid']}/checks/request"
    refused = post_form(client, path, {"question": "", "due": "4"})
    assert refused.status_code == 422
    assert summary_links(refused.text) == [
        ("agency", "Choose the agency to ask"),
        ("question", "Say what you are asking"),
    ]
    assert 'aria-invalid="true"' in refused.text and '<option value="4" selected>' in refused.text
    sent = post_form(client, path, {"agency": "school", "question": "Attendance?", "due": "4"})
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/referrals/{world['rid']}#checks-title"
    page = client.get(f"/referrals/{world['rid']}").text
    assert "Request sent to School." in page and "1 check awaiting a reply" in page
    with session_factory(db)() as session:
        request = session.scalars(select(CheckRequestRow)).one()
    assert (
        timedelta(hours=3, minutes=59) < request.due_at - request.requested_at <= timedelta(hours=4)
    )
    reply_path = f"/checks/{request.request_id}/reply"
    assert f'href="{reply_path}"' in page
    missing = post_form(client, reply_path, {"outcome": "known_with_concerns"})
    assert missing.status_code == 422
    assert summary_links(missing.text) == [("summary", "Say what the concerns are")]
    done = post_form(
        client, reply_path, {"outcome": "known_with_concerns", "summary": "Absent 40% of term."}
    )
    assert done.status_code == 303
    page = client.get(f"/referrals/{world['rid']}").text
    assert "Known, with concerns" in page and "Absent 40% of term." in page
    assert "No checks awaiting a reply" in page


def test_strategy_discussion_form_checks_the_agencies_and_the_date(
    world: dict[str, Any], settings: Settings
) -> None:
    client = page_client(world["app"], settings, "practitioner")
    path = f"/referrals/{world['rid']}/strategy"
    form = client.get(path).text
    assert re.search(r'id="held_date"[^>]*value="\d{1,2}/\d{1,2}/\d{4}"', form)
    refused = post_form(
        client,
        path,
        {"held_date": "31/02/2026", "held_time": "10:00", "attendees": ["police"]},
    )
    assert refused.status_code == 422
    assert [field for field, _ in summary_links(refused.text)] == [
        "held_date",
        "attendees",
        "outcome",
    ]
    assert 'id="attendee-police" name="attendees" value="police" checked' in refused.text
    local = NOW.astimezone(LOCAL)
    stored = post_form(
        client,
        path,
        {
            "held_date": f"{local.day}/{local.month}/{local.year}",
            "held_time": f"{local:%H:%M}",
            "attendees": ["social_care", "police", "health"],
            "role_police": "Detective Sergeant",
            "outcome": "section_47_enquiry",
        },
    )
    assert stored.status_code == 303, stored.text
    page = client.get(f"/referrals/{world['rid']}").text
    assert "Section 47 enquiry" in page and "Police: Detective Sergeant;" in page


def test_facts_form_records_only_what_is_answered(
    world: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = page_client(world["app"], settings, "practitioner")
    path = f"/referrals/{world['rid']}/facts"
    local = NOW.astimezone(LOCAL)
    when = {"fact_date": f"{local.day}/{local.month}/{local.year}", "fact_time": f"{local:%H:%M}"}
    nothing = post_form(client, path, when)
    assert nothing.status_code == 422
    assert summary_links(nothing.text) == [("fact-child_seen", "Answer at least one question")]
    alone = post_form(client, path, when | {"child_seen_alone": "yes"})
    assert alone.status_code == 422
    assert summary_links(alone.text)[0][0] == "fact-child_seen_alone"
    graded = post_form(client, path, when | {"carer_note": "Says he fell."})
    assert summary_links(graded.text) == [
        ("fact-carer_account", "Say whether others corroborate the account you summarised")
    ]
    assert "Says he fell." in graded.text  # the words typed are kept
    account = post_form(client, path, when | {"carer_account": "not_corroborated"})
    assert summary_links(account.text) == [
        ("carer_note", "Summarise the parent's or carer's account")
    ]
    stored = post_form(
        client,
        path,
        when
        | {
            "child_seen": "yes",
            "child_seen_alone": "yes",
            "carer_account": "partly_corroborated",
            "carer_note": "Says he fell off a bike.",
        },
    )
    assert stored.status_code == 303, stored.text
    with session_factory(db)() as session:
        kinds = sorted(row.kind for row in session.scalars(select(CheckFactRow)))
    assert kinds == ["carer_account", "child_seen", "child_seen_alone"]
    page = client.get(f"/referrals/{world['rid']}").text
    assert "Child seen alone" in page and "Says he fell off a bike." in page


def test_a_held_decision_is_signed_off_by_another_manager_through_the_pages(
    world: dict[str, Any], settings: Settings, db: Engine
) -> None:
    practitioner = page_client(world["app"], settings, "practitioner")
    rid = world["rid"]
    decided = practitioner.post(
        f"/referrals/{rid}/decision",
        data={
            "csrf_token": csrf_of(practitioner.get(f"/referrals/{rid}").text),
            "decision": "no_further_action",
            "agreement": "agree",
        },
    )
    # Without a rationale: the decision form again, saying why.
    assert decided.status_code == 422
    assert "physical-abuse concern" in decided.text
    form = practitioner.get(f"/referrals/{rid}").text
    decided = practitioner.post(
        f"/referrals/{rid}/decision",
        data={
            "csrf_token": csrf_of(form),
            "decision": "no_further_action",
            "agreement": "agree",
            "rationale": "The nurse saw the bruise; consistent with a fall.",
        },
    )
    assert decided.status_code == 303
    page = practitioner.get(f"/referrals/{rid}").text
    assert "This decision awaits a manager's sign-off" in unescape(page)
    assert "Sign off or send back" not in page  # practitioners do not sign off
    assert practitioner.get(f"/referrals/{rid}/sign-off").status_code == 403
    queue = practitioner.get("/queue").text
    assert f"/referrals/{rid}" in queue  # still in the queue

    manager = page_client(world["app"], settings, "manager")
    listed = manager.get("/sign-offs").text
    assert f'href="/referrals/{rid}/sign-off"' in listed
    assert "not recorded as seen" in listed
    sign_page = manager.get(f"/referrals/{rid}/sign-off").text
    assert "The nurse saw the bruise; consistent with a fall." in sign_page
    refused = post_form(manager, f"/referrals/{rid}/sign-off", {"verdict": "send_back"})
    assert refused.status_code == 422
    assert summary_links(refused.text) == [("note", "Say why the decision is sent back")]
    signed = post_form(manager, f"/referrals/{rid}/sign-off", {"verdict": "sign_off"})
    assert signed.status_code == 303 and signed.headers["location"] == "/sign-offs"
    assert "signed off: it has left the queue" in manager.get("/sign-offs").text
    assert f"/referrals/{rid}" not in manager.get("/queue").text
    with session_factory(db)() as session:
        row = session.scalars(select(SignOffRow)).one()
        actions = set(session.scalars(select(AuditEventRow.action)))
    assert row.status == "signed_off"
    assert {"signoff.requested", "signoff.signed_off", "checks.page_viewed"} <= actions


def test_roles_and_the_form_token_guard_every_checks_page(
    world: dict[str, Any], settings: Settings
) -> None:
    rid = world["rid"]
    researcher = page_client(world["app"], settings, "researcher")
    for path in (
        f"/referrals/{rid}/checks/request",
        f"/referrals/{rid}/strategy",
        f"/referrals/{rid}/facts",
        f"/referrals/{rid}/sign-off",
        "/sign-offs",
    ):
        assert researcher.get(path).status_code == 403, path
    practitioner = page_client(world["app"], settings, "practitioner")
    forged = practitioner.post(
        f"/referrals/{rid}/checks/request",
        data={"agency": "police", "question": "x", "csrf_token": "forged"},
    )
    assert forged.status_code == 403
    assert practitioner.get("/referrals/R-none/facts").status_code == 404
    assert practitioner.get("/checks/RFI-none/reply").status_code == 404
    # An agency key is not a page session.
    key = key_headers(settings.database_url, "police-niche", agencies=["police"])
    anonymous = TestClient(world["app"], follow_redirects=False, headers=key)
    assert anonymous.get(f"/referrals/{rid}/facts").status_code == 303
