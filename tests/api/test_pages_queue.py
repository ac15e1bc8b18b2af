"""Issue 22, area D without a browser: the summary card, the queue grouped by child, stale
scores, the order that starves no band, and the researchers' landing page.

The same pages in Chromium (axe, 390 px, keyboard): tests/api/test_browser_queue.py.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from access_helpers import PASSWORD, user_headers
from api_support import T0, Switch, _events, referral, scorer  # noqa: F401 (scorer is a fixture)
from fastapi.testclient import TestClient

from api.app import create_app
from models.scorer import Scorer
from triage.settings import Settings

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_serial = itertools.count()


@pytest.fixture
def app_with_child(settings: Settings, scorer: Scorer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """Three open referrals about one child (a week apart) and one about another child."""
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    admin = user_headers(settings, "admin")
    with TestClient(app, headers=admin) as api:
        ids = []
        for days_before in (14, 7, 0):
            body = referral(received_at=T0 - timedelta(days=days_before))
            response = api.post("/v1/referrals", json=body)
            assert response.status_code == 201, response.text
            ids.append(response.json()["referral_id"])
        other = api.post("/v1/referrals", json=referral(child_id="C-2001", household_id="H-9"))
        assert other.status_code == 201, other.text
        yield {"app": app, "api": api, "ids": ids, "other": other.json()["referral_id"]}


def page_client(app: Any) -> TestClient:
    """A client that keeps cookies like a browser and follows no redirects."""
    return TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})


def sign_in(client: TestClient, settings: Settings, *roles: str, next_path: str = "/queue") -> str:
    """Sign in through the form as a new user with ``roles``; where the sign-in sends them."""
    username = f"queue-{'-'.join(roles)}-{next(_serial)}"
    user_headers(settings, *roles, username=username)
    form = client.get("/login")
    token = CSRF.search(form.text)
    assert token is not None
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "csrf_token": token.group(1),
            "next": next_path,
        },
    )
    assert response.status_code == 303, response.text
    return response.headers["location"]


def test_the_referral_page_opens_with_a_summary_card_and_contents(
    app_with_child: dict[str, Any], settings: Settings
) -> None:
    client = page_client(app_with_child["app"])
    sign_in(client, settings, "practitioner")
    first, second, newest = app_with_child["ids"]
    html = client.get(f"/referrals/{first}").text
    card = html[html.index('id="summary-title"') : html.index('id="contents-title"')]
    assert "Sam Doe" in card and "C-1042" in card and "old when referred" in card
    # The child's two other open referrals, linked; the other child's is not there.
    assert f'href="/referrals/{second}"' in card and f'href="/referrals/{newest}"' in card
    assert app_with_child["other"] not in card
    # Two later referrals arrived after this one: its score leaves them out, and says so.
    assert "2 newer records about this child since this referral arrived" in card
    assert '<a href="#decision-title">Go to decision</a>' in card
    contents = html[html.index('id="contents-title"') : html.index('id="facts-title"')]
    targets = re.findall(r'href="#([^"]+)"', contents)
    assert targets[0] == "facts-title" and targets[-1] == "decision-title"
    for target in targets:
        assert f'id="{target}"' in html, target
    assert html.index('id="summary-title"') < html.index('id="facts-title"')


def test_the_queue_groups_a_childs_referrals_and_flags_stale_scores(
    app_with_child: dict[str, Any], settings: Settings
) -> None:
    client = page_client(app_with_child["app"])
    sign_in(client, settings, "practitioner")
    html = client.get("/queue").text
    groups = re.findall(r"<tbody class=\"child-group[^\"]*\">(.*?)</tbody>", html, re.S)
    assert len(groups) == 2
    (several,) = [g for g in groups if "3 open referrals" in g]
    for referral_id in app_with_child["ids"]:
        assert f'href="/referrals/{referral_id}"' in several
    first, second, newest = app_with_child["ids"]
    # The oldest has two newer referrals about the child, the middle one one, the newest none.
    rows = {rid: several[several.index(f'href="/referrals/{rid}"') :] for rid in (first, second)}
    assert "2 newer records since this arrived" in rows[first].split("</tr>")[0]
    assert "1 newer record since this arrived" in rows[second].split("</tr>")[0]
    row_of_newest = several[several.index(f'href="/referrals/{newest}"') :].split("</tr>")[0]
    assert "newer record" not in row_of_newest
    assert "How the queue is ordered" in html and "No band can wait indefinitely" in html


def test_the_api_queue_names_other_open_referrals_and_newer_records(
    app_with_child: dict[str, Any],
) -> None:
    api = app_with_child["api"]
    items = {i["referral_id"]: i for i in api.get("/v1/queue").json()["items"]}
    first, second, newest = app_with_child["ids"]
    assert [o["referral_id"] for o in items[first]["other_open_referrals"]] != []
    assert {o["referral_id"] for o in items[newest]["other_open_referrals"]} == {first, second}
    assert items[first]["newer_records"] == 2 and items[newest]["newer_records"] == 0
    assert items[app_with_child["other"]]["other_open_referrals"] == []
    # A record shared after the newest referral arrived is not in any of the three scores.
    late = _events()[1] | {"recorded_at": datetime.now(UTC).isoformat()}
    assert api.post("/v1/events", json=late).status_code == 201
    after = {i["referral_id"]: i for i in api.get("/v1/queue").json()["items"]}
    assert after[newest]["newer_records"] == 1 and after[first]["newer_records"] == 3


def test_rescoring_follows_records_shared_before_receipt(
    app_with_child: dict[str, Any],
) -> None:
    """A record that was known before a referral arrived (a late feed) is counted: rescored."""
    api = app_with_child["api"]
    newest = app_with_child["ids"][-1]
    before = api.get(f"/v1/referrals/{newest}").json()["score"]["scored_at"]
    stored = api.post("/v1/events", json=_events())
    assert stored.status_code == 201 and newest in stored.json()["rescored"]
    detail = api.get(f"/v1/referrals/{newest}").json()
    assert detail["score"]["scored_at"] > before
    item = next(i for i in api.get("/v1/queue").json()["items"] if i["referral_id"] == newest)
    assert item["newer_records"] == 0, "records known before receipt are in the score"


def test_a_lower_referral_past_its_due_time_is_above_fresh_referrals(
    app_with_child: dict[str, Any],
) -> None:
    """Through the API: the oldest referral of the child, whatever its band, is above a
    referral that arrived after its look-by time passed."""
    api = app_with_child["api"]
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = api.post(
        "/v1/referrals",
        json=referral(child_id="C-3001", household_id="H-30", received_at=now),
    ).json()
    items = [i["referral_id"] for i in api.get("/v1/queue").json()["items"]]
    if not fresh["flags"]:
        for old in app_with_child["ids"]:
            assert items.index(old) < items.index(fresh["referral_id"])


def test_researchers_land_on_the_research_page_not_a_403(
    app_with_child: dict[str, Any], settings: Settings
) -> None:
    client = page_client(app_with_child["app"])
    assert sign_in(client, settings, "researcher") == "/research"
    page = client.get("/research")
    assert page.status_code == 200
    assert "/v1/auth/token" in page.text and "/v1/research/referrals" in page.text
    assert "/v1/research/decisions" in page.text and "/v1/audit/fairness" in page.text
    assert 'href="/queue"' not in page.text, "no link to a page that refuses them"
    assert client.get("/").headers["location"] == "/research"
    queue = client.get("/queue")
    assert queue.status_code == 303 and queue.headers["location"] == "/research"
    refused = client.get(f"/referrals/{app_with_child['ids'][0]}")
    assert refused.status_code == 403 and 'href="/research"' in refused.text
    assert "Sam Doe" not in refused.text


def test_casework_roles_still_start_on_the_queue(
    app_with_child: dict[str, Any], settings: Settings
) -> None:
    for roles in (("practitioner",), ("manager",), ("researcher", "practitioner")):
        client = page_client(app_with_child["app"])
        assert sign_in(client, settings, *roles) == "/queue"
        assert client.get("/").headers["location"] == "/queue"
    client = page_client(app_with_child["app"])
    sign_in(client, settings, "practitioner")
    assert client.get("/research").status_code == 403
