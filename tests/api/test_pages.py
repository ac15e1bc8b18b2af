"""The server-rendered pages without a browser: sessions, CSRF, roles, content and the forms.

The same journeys in real headless Chromium, with accessibility scans: tests/api/test_browser.py.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest
from access_helpers import PASSWORD, user_headers
from api_support import T0, Switch, referral, scorer  # noqa: F401 (scorer is a fixture)
from fastapi import Response
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.app import create_app
from api.web.sessions import COOKIE_NAME, PageSession, read_session, write_session
from models.scorer import Scorer
from triage.settings import Settings
from triage.store import (
    AuditEventRow,
    DecisionRow,
    HouseholdMembershipRow,
    ScoreRow,
    make_engine,
    session_factory,
)
from triage.store.tables import utcnow

_serial = itertools.count()
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """An engine for checking what the pages stored."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def app_with_cases(settings: Settings, scorer: Scorer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The app with a model and three referrals; the newest has history behind its reasons."""
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    admin = user_headers(settings, "admin")
    with TestClient(app, headers=admin) as api:
        ids = []
        for days_before in (60, 20, 0):
            body = referral(received_at=T0 - timedelta(days=days_before))
            response = api.post("/v1/referrals", json=body)
            assert response.status_code == 201, response.text
            ids.append(response.json()["referral_id"])
        other = api.post("/v1/referrals", json=referral(child_id="C-2001", household_id="H-9"))
        assert other.status_code == 201
        # Close the two older referrals, so the queue holds the newest and the other child's.
        for old in ids[:2]:
            decided = api.post(
                f"/v1/referrals/{old}/decisions",
                json={"decision": "assessment", "agreement": "agree", "reason_codes": []},
            )
            assert decided.status_code == 201, decided.text
        yield {"app": app, "newest": ids[-1], "older": ids[:2], "other": other.json()}


def browser(app: Any) -> TestClient:
    """A client with no credentials that keeps cookies, like a browser (no redirects followed)."""
    return TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})


def csrf_of(html: str) -> str:
    """The CSRF token in a page's form."""
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: TestClient, settings: Settings, *roles: str) -> None:
    """Create a user with ``roles`` and sign in through the login form."""
    username = f"page-{'-'.join(roles)}-{next(_serial)}"
    user_headers(settings, *roles, username=username)
    form = client.get("/login")
    assert form.status_code == 200
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": "/queue",
        },
    )
    assert response.status_code == 303, response.text
    # Researchers start on the research page (the queue refuses them).
    home = "/research" if set(roles) == {"researcher"} else "/queue"
    assert response.headers["location"] == home


def test_pages_need_a_session_and_send_you_back_after_sign_in(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = browser(app_with_cases["app"])
    newest = app_with_cases["newest"]
    response = client.get(f"/referrals/{newest}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/referrals/{newest}"
    # A bearer token is not a page session.
    assert browser(app_with_cases["app"]).get("/queue").status_code == 303
    sign_in(client, settings, "practitioner")
    assert client.get(f"/referrals/{newest}").status_code == 200


def test_session_cookie_is_signed_httponly_and_samesite(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = browser(app_with_cases["app"])
    cookie = client.get("/login").headers["set-cookie"]
    assert COOKIE_NAME in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    sign_in(client, settings, "practitioner")
    value = client.cookies[COOKIE_NAME]
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    client.cookies.set(COOKIE_NAME, tampered)
    assert client.get("/queue").status_code == 303


def test_wrong_password_and_foreign_next_are_refused(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = browser(app_with_cases["app"])
    user_headers(settings, "practitioner", username="pat")
    form = client.get("/login?next=//evil.example/x")
    assert 'value="/queue"' in form.text  # an off-site next becomes the queue
    wrong = client.post(
        "/login", data={"username": "pat", "password": "nope", "csrf_token": csrf_of(form.text)}
    )
    assert wrong.status_code == 401 and "not right" in wrong.text
    assert COOKIE_NAME in wrong.headers["set-cookie"]
    with db.connect() as connection:
        actions = list(connection.scalars(select(AuditEventRow.action)))
    assert "auth.login_failed" in actions


def test_forms_without_the_csrf_token_are_refused(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = browser(app_with_cases["app"])
    newest = app_with_cases["newest"]
    # Sign-in itself needs the token the form carries.
    user_headers(settings, "practitioner", username="casey")
    client.get("/login")
    no_token = client.post("/login", data={"username": "casey", "password": PASSWORD})
    assert no_token.status_code == 403
    sign_in(client, settings, "practitioner")
    decision = {"decision": "assessment", "priority": "standard"}
    for token in (None, "forged"):
        data = decision | ({"csrf_token": token} if token else {})
        response = client.post(f"/referrals/{newest}/decision", data=data)
        assert response.status_code == 403 and "Nothing was recorded" in response.text
    with db.connect() as connection:
        decided = connection.scalars(
            select(DecisionRow.id).where(DecisionRow.referral_id == newest)
        ).all()
    assert decided == []


def test_queue_page_shows_bands_reasons_counts_and_filters(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    page = client.get("/queue")
    assert page.status_code == 200
    html = page.text
    assert "<caption>" in html and '<th scope="col">Main reasons</th>' in html
    assert app_with_cases["newest"] in html and app_with_cases["older"][0] not in html
    assert "of 2 matching" in html and "(2 open in all)" in html
    assert re.search(r'class="tag tag-[a-z-]+">(Review first|Elevated|Standard|Lower)<', html)
    assert html.count('<ol class="reasons-short">') == 2
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "script-src" not in csp
    filtered = client.get("/queue", params={"min_age": "15"})
    assert filtered.status_code == 200 and "No referrals match" in filtered.text
    bad = client.get("/queue", params={"min_age": "old", "band": "Urgent"})
    assert bad.status_code == 422
    assert "There is a problem" in bad.text and "Unknown band Urgent" in bad.text
    assert 'href="#min_age"' in bad.text
    with db.connect() as connection:
        views = connection.scalars(
            select(AuditEventRow.payload).where(AuditEventRow.action == "queue.viewed")
        ).all()
    assert any(v.get("channel") == "page" for v in views)


def test_referral_page_puts_facts_first_and_links_reasons_to_records(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    newest = app_with_cases["newest"]
    html = client.get(f"/referrals/{newest}").text
    # The summary card and the contents come first; then the sections in this order.
    order = [
        html.index('<h2 id="summary-title"'),
        html.index('<h2 id="contents-title"'),
        html.index('<h2 id="facts-title"'),
        html.index('<h2 id="score-title"'),
        html.index('<h2 id="reasons-title"'),
        html.index('<h2 id="history-title"'),
        html.index('<h2 id="unknown-title"'),
        html.index('<h2 id="decision-title"'),
    ]
    assert order == sorted(order)
    assert "Sam Doe" in html and "Estimated chance of" in html
    assert "<svg" in html and "<title>What moved this score" in html
    older = app_with_cases["older"][0]
    # A reason expands to the earlier referral behind it, which is an anchor in the timeline.
    assert f'href="#record-referral-{older}"' in html
    assert f'id="record-referral-{older}"' in html
    assert "Records known up to" in html


def test_the_decision_is_its_own_step_and_the_referral_leaves_the_queue(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    """The whole journey is in tests/api/test_decision_pages.py; here, the referral page's part."""
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    newest = app_with_cases["newest"]
    html = client.get(f"/referrals/{newest}").text
    assert f'href="/referrals/{newest}/decide"' in html
    assert "Do you agree?" not in html and 'name="agreement"' not in html
    token = csrf_of(html)
    answers = {"priority": "elevated", "decision": "strategy_discussion", "csrf_token": token}
    assert client.post(f"/referrals/{newest}/decide", data=answers).status_code == 200
    done = client.post(f"/referrals/{newest}/decision", data=answers)
    assert done.status_code == 303 and done.headers["location"] == "/queue"
    queue = client.get("/queue").text
    assert f"Decision recorded for referral {newest}" in queue
    assert f'href="/referrals/{newest}"' not in queue
    assert "Decision recorded" not in client.get("/queue").text  # a notice shows once
    again = client.post(f"/referrals/{newest}/decision", data=answers)
    assert again.status_code == 409 and "already has a decision" in again.text


def test_disputing_a_record_shows_the_what_if(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    newest, older = app_with_cases["newest"], app_with_cases["older"][0]
    token = csrf_of(client.get(f"/referrals/{newest}").text)
    empty = client.post(
        f"/referrals/{newest}/dispute",
        data={"record_id": older, "reason": " ", "csrf_token": token},
    )
    assert empty.status_code == 422 and "Say why the record is wrong" in empty.text
    response = client.post(
        f"/referrals/{newest}/dispute",
        data={"record_id": older, "reason": "About another family.", "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/referrals/{newest}#dispute-")
    html = client.get(f"/referrals/{newest}").text
    assert "Disputed records and what-if" in html
    assert "With the record:" in html and "Without it:" in html


@pytest.mark.parametrize(
    ("roles", "queue", "manager"),
    [
        (("practitioner",), 200, 403),
        (("manager",), 200, 200),
        (("admin",), 200, 200),
        (("researcher",), 303, 403),
    ],
)
def test_pages_admit_only_their_roles(
    app_with_cases: dict[str, Any],
    settings: Settings,
    roles: tuple[str, ...],
    queue: int,
    manager: int,
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, *roles)
    assert client.get("/queue").status_code == queue  # 303: a researcher goes to /research
    refused = 403 if queue == 303 else queue
    assert client.get(f"/referrals/{app_with_cases['newest']}").status_code == refused
    assert client.get("/manager").status_code == manager


def test_manager_page_counts_decisions_by_band_and_disagreement_by_reason(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "manager")
    newest = app_with_cases["newest"]
    token = csrf_of(client.get(f"/referrals/{newest}").text)
    with db.connect() as connection:
        band = connection.scalars(
            select(ScoreRow.band).where(ScoreRow.referral_id == newest).order_by(ScoreRow.id)
        ).all()[-1]
    assert band != "Lower", "the newest referral needs a band a priority can be lower than"
    recorded = client.post(
        f"/referrals/{newest}/decision",
        data={
            "decision": "early_help",
            "priority": "lower",
            "reason_codes": ["already_open_to_a_service"],
            "rationale": "School already supports the family.",
            "csrf_token": token,
        },
    )
    assert recorded.status_code == 303, recorded.text
    html = client.get("/manager", params={"weeks": 52}).text
    assert "no target" in html
    assert "3 decisions recorded" in html
    assert '<th scope="col">already open to a service</th>' in html
    # The newest week comes first: no "higher", one "lower", citing the one code.
    newest = re.search(
        r'<tbody>\s*<tr>\s*<th scope="row"><time[^>]*>[^<]*</time></th>(.*?)</tr>',
        html.split("reasons-caption")[-1],
        re.S,
    )
    assert newest is not None
    assert re.findall(r"<td>(\d+)</td>", newest.group(1)) == ["0", "1", "1"]


def test_unknown_pages_and_referrals_answer_in_html(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    missing = client.get("/referrals/R-nope")
    assert missing.status_code == 404 and "Referral not found" in missing.text
    nowhere = client.get("/nowhere")
    assert nowhere.status_code == 404 and nowhere.headers["content-type"].startswith("text/html")
    # The API keeps answering JSON.
    assert client.get("/v1/nowhere").headers["content-type"] == "application/json"


def test_sign_out_ends_the_session(app_with_cases: dict[str, Any], settings: Settings) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    token = csrf_of(client.get("/queue").text)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/queue").status_code == 303


def test_a_copied_cookie_dies_with_sign_out(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    copied = client.cookies[COOKIE_NAME]
    token = csrf_of(client.get("/queue").text)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, copied)
    assert client.get("/queue").status_code == 303
    client.cookies.clear()
    sign_in(client, settings, "practitioner")  # a new sign-in works again
    assert client.get("/queue").status_code == 200


def test_a_session_ends_a_working_day_after_sign_in_however_it_is_used(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, "practitioner")
    current = read_cookie(client, settings)
    assert current.user_id is not None and current.signed_in_at is not None
    # Seen again at once, the session is not re-stamped by the sign-in page.
    assert "set-cookie" not in client.get("/login").headers
    stale = PageSession(
        csrf=current.csrf, user_id=current.user_id, signed_in_at=time.time() - 9 * 3600
    )
    response = Response()
    write_session(response, stale, settings.get_secret_key(), secure=False)
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, response.headers["set-cookie"].split(";")[0].split("=", 1)[1])
    assert client.get("/queue").status_code == 303


def test_a_form_sent_after_the_session_ended_returns_to_its_page(
    app_with_cases: dict[str, Any],
) -> None:
    client = browser(app_with_cases["app"])
    newest = app_with_cases["newest"]
    response = client.post(f"/referrals/{newest}/decision", data={"decision": "assessment"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/referrals/{newest}"
    filtered = client.get("/queue", params={"band": "Elevated"})
    assert filtered.headers["location"] == "/login?next=/queue%3Fband%3DElevated"


def read_cookie(client: TestClient, settings: Settings) -> PageSession:
    """The page session the client holds."""
    request = SimpleNamespace(cookies={COOKIE_NAME: client.cookies[COOKIE_NAME]})
    session = read_session(request, settings.get_secret_key())  # type: ignore[arg-type]
    assert session is not None
    return session


# --- who lives here (issue 20) ---------------------------------------------------------------


class _Tables(HTMLParser):
    """Each table of a fragment: whether it has a caption, and the scope of each header cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append({"caption": False, "scopes": []})
        elif tag == "caption" and self.tables:
            self.tables[-1]["caption"] = True
        elif tag == "th" and self.tables:
            self.tables[-1]["scopes"].append(dict(attrs).get("scope"))


def _panel_of(html: str) -> str:
    start = html.index('<section aria-labelledby="household-title">')
    return html[start : html.index("</section>", start)]


@pytest.fixture
def household_case(app_with_cases: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The newest referral's household gains an adult with a record, and a stored score whose
    reasons cite the adult's membership and record (hand-made: the ids are what count)."""
    admin = user_headers(settings, "admin")
    with TestClient(app_with_cases["app"], headers=admin) as api:
        events = [
            {"source_system": "council-care", "source_event_id": "J-page",
             "agency": "social_care", "kind": "adult_joined_household",
             "occurred_at": (T0 - timedelta(days=21)).isoformat(), "household_id": "H-311",
             "person_id": "P-page", "attributes": {"role": "unrelated_adult"},
             "person": {"given_name": "Robin", "family_name": "Vale"}},
            {"source_system": "police-niche", "source_event_id": "V-page", "agency": "police",
             "kind": "adult_violence_offence",
             "occurred_at": (T0 - timedelta(days=300)).isoformat(),
             "household_id": "H-elsewhere", "person_id": "P-page"},
        ]  # fmt: skip
        stored = api.post("/v1/events", json=events)
        assert stored.status_code == 201, stored.text
    record_id = stored.json()["items"][1]["event_id"]
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            membership_id = session.scalars(
                select(HouseholdMembershipRow.membership_id).where(
                    HouseholdMembershipRow.person_id == "P-page"
                )
            ).one()
            reasons = [
                {"signal": "unrelated_adult_in_household", "value": 1.0, "contribution": 0.7,
                 "direction": "raises priority", "sentence": "An unrelated adult lives here",
                 "record_ids": [membership_id], "records_omitted": 0},
                {"signal": "adult_risk_record_joined", "value": 1.0, "contribution": 0.5,
                 "direction": "raises priority",
                 "sentence": "An adult with a violence record joined",
                 "record_ids": [record_id], "records_omitted": 0},
            ]  # fmt: skip
            session.add(
                ScoreRow(referral_id=app_with_cases["newest"], scored_at=utcnow(),
                         model_version="hand-made/1", probability=0.4, probability_low=0.3,
                         probability_high=0.5, band="Elevated", flags=[], reasons=reasons)
            )  # fmt: skip
            session.commit()
    finally:
        engine.dispose()
    return app_with_cases | {"record_id": record_id, "membership_id": membership_id}


def test_referral_page_shows_who_lives_here_and_links_reasons_to_people(
    household_case: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = browser(household_case["app"])
    sign_in(client, settings, "practitioner")
    newest = household_case["newest"]
    page = client.get(f"/referrals/{newest}")
    assert page.status_code == 200
    html = page.text
    order = [html.index('<h2 id="reasons-title"'), html.index('<h2 id="household-title"'),
             html.index('<h2 id="history-title"')]  # fmt: skip
    assert order == sorted(order)
    panel = _panel_of(html)
    # Both reasons link to the adult, whose row is the anchor.
    reasons = html[html.index('id="reasons-title"') : html.index('id="household-title"')]
    assert reasons.count('href="#person-P-page"') == 2
    assert 'id="person-P-page"' in panel and 'id="person-C-1042"' in panel
    assert "Robin Vale" in panel and "unrelated adult" in panel.lower()
    assert "3 weeks before this referral" in panel and "lives here now" in panel
    assert f'id="person-record-{household_case["record_id"]}"' in panel
    assert "Violence offence" in panel and "Police" in panel
    assert "Records about Robin Vale" in panel
    assert "The referral lists no household members." in panel
    # The joining is in the household's history too, and says whom it is about.
    history = html[html.index('id="history-title"') :]
    joined = (
        'An adult joined the household</strong>. About <a href="#person-P-page">Robin Vale</a>.'
    )
    assert joined in history
    tables = _Tables()
    tables.feed(panel)
    assert len(tables.tables) == 2
    for table in tables.tables:
        assert table["caption"] and table["scopes"] and None not in table["scopes"]
    with db.connect() as connection:
        shown = connection.scalars(
            select(AuditEventRow.payload).where(
                AuditEventRow.action == "household.person_records_viewed"
            )
        ).all()
        viewed = connection.scalars(
            select(AuditEventRow.payload).where(
                AuditEventRow.action == "referral.viewed", AuditEventRow.entity_id == newest
            )
        ).all()
    assert shown[-1]["channel"] == "page"
    assert shown[-1]["record_ids"] == [household_case["record_id"]]
    assert viewed[-1]["household_panel"] is True and viewed[-1]["person_records"] == 1


def test_the_household_panel_is_not_shown_to_roles_that_may_not_read_the_referral(
    household_case: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = browser(household_case["app"])
    sign_in(client, settings, "researcher")
    page = client.get(f"/referrals/{household_case['newest']}")
    assert page.status_code == 403
    assert "Robin" not in page.text and "Who lives here" not in page.text
    with db.connect() as connection:
        shown = connection.scalars(
            select(AuditEventRow.id).where(
                AuditEventRow.action == "household.person_records_viewed"
            )
        ).all()
    assert shown == []
