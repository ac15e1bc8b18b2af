"""The history on the referral page stays light for a child with many records (issue 22, the
page's speed), without a browser: the newest rows first with "Show all", long runs listing
their newest records, and disputing a record as its own step instead of a form per row.

The dispute step in Chromium, with axe and the keyboard: tests/api/test_browser_chronology.py.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from typing import Any

import chronology_support as world
import pytest
from access_helpers import csrf_of, sign_in_page, user_headers
from api_support import Switch, scorer  # noqa: F401 (scorer is a fixture)
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from models.scorer import Scorer
from triage.settings import Settings
from triage.store import AuditEventRow, make_engine
from triage.store.migrate import upgrade

TAGS = re.compile(r"<[^>]+>")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, scorer: Scorer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The app with the chronology child (10 records, a run of 5), a practitioner signed in."""
    directory = tmp_path_factory.mktemp("history")
    url = f"sqlite:///{directory / 'triage.db'}"
    upgrade(url)
    settings = Settings(
        var_dir=directory, database_url=url, mlflow_tracking_uri=f"sqlite:///{directory}/ml.db"
    )
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    with TestClient(app, headers=user_headers(settings, "admin")) as api:
        ids = world.build(api)
    page = TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})
    with page:
        sign_in_page(page, settings, "practitioner")
        yield ids | {"page": page, "url": url}


def history(case: dict[str, Any], query: str = "") -> str:
    """The history section of the newest referral's page, with ``query``."""
    response = case["page"].get(f"/referrals/{case['newest']}{query}")
    assert response.status_code == 200, response.text
    start = response.text.index('id="history-title"')
    return response.text[start : response.text.index("</section>", start)]


def text(fragment: str) -> str:
    """A fragment's visible words."""
    return re.sub(r"\s+", " ", htmllib.unescape(TAGS.sub(" ", fragment)))


def audit_payloads(case: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The payloads of the store's audit events with ``action``, oldest first."""
    engine = make_engine(case["url"])
    try:
        with engine.connect() as connection:
            query = select(AuditEventRow.payload).where(AuditEventRow.action == action)
            return list(connection.scalars(query.order_by(AuditEventRow.id)))
    finally:
        engine.dispose()


def test_each_record_links_to_its_dispute_step_and_no_row_carries_a_form(case) -> None:
    shown = history(case)
    assert "<form" not in shown.split("</form>", 1)[1]  # only the filter's form
    assert "<textarea" not in shown
    links = re.findall(r'href="/referrals/([^/]+)/dispute\?record=([^"]+)"', shown)
    assert {referral for referral, _ in links} == {case["newest"]}
    # Every agency record and the earlier referral, each once; not the referral itself.
    assert {record for _, record in links} == {
        *case["missed"], case["offence"], case["incident"], case["school"], case["earlier"]
    }  # fmt: skip
    assert len(links) == 9 and case["newest"] not in {record for _, record in links}
    assert f'Dispute<span class="visually-hidden"> record {case["school"]}</span>' in shown


def test_the_dispute_step_shows_the_record_and_is_audited_as_a_view(case) -> None:
    response = case["page"].get(f"/referrals/{case['newest']}/dispute?record={case['school']}")
    assert response.status_code == 200
    page = text(response.text)
    assert "Dispute a record" in page and "School safeguarding concern" in page
    assert "Bruise on the arm seen in PE" in page and "31 Mar 2026, 00:30" in page
    assert '<label for="reason">Why is this record wrong?</label>' in response.text
    assert f'value="{case["school"]}"' in response.text  # the record travels in the form
    back = f'href="/referrals/{case["newest"]}#record-event-{case["school"]}"'
    assert back in response.text
    views = audit_payloads(case, "referral.viewed")
    assert views[-1] == {"channel": "page", "step": "dispute", "record_id": case["school"]}


@pytest.mark.parametrize("record", ["E-nothing-like-this", "", "newest"])
def test_a_record_not_in_the_history_or_not_disputable_is_not_found(case, record: str) -> None:
    record = case["newest"] if record == "newest" else record  # the referral itself
    response = case["page"].get(f"/referrals/{case['newest']}/dispute?record={record}")
    assert response.status_code == 404 and "Record not found" in response.text
    missing = case["page"].get(f"/referrals/REF-NOPE/dispute?record={case['school']}")
    assert missing.status_code == 404


def test_a_dispute_without_a_reason_comes_back_to_its_step(case) -> None:
    step = case["page"].get(f"/referrals/{case['newest']}/dispute?record={case['incident']}")
    token = csrf_of(step.text)
    empty = case["page"].post(
        f"/referrals/{case['newest']}/dispute",
        data={"record_id": case["incident"], "reason": "   ", "csrf_token": token},
    )
    assert empty.status_code == 422
    assert "There is a problem" in empty.text and 'href="#reason"' in empty.text
    assert 'aria-invalid="true"' in empty.text and "Domestic abuse incident" in empty.text
    long = case["page"].post(
        f"/referrals/{case['newest']}/dispute",
        data={"record_id": case["incident"], "reason": "x" * 2001, "csrf_token": token},
    )
    assert long.status_code == 422 and "Keep the reason to 2,000 characters" in long.text
    assert "x" * 2001 in long.text  # what was typed is kept
    forged = case["page"].post(
        f"/referrals/{case['newest']}/dispute",
        data={"record_id": case["incident"], "reason": "Not ours.", "csrf_token": "forged"},
    )
    assert forged.status_code == 403


def test_a_dispute_is_stored_audited_and_its_what_if_shown(case) -> None:
    step = case["page"].get(f"/referrals/{case['newest']}/dispute?record={case['offence']}")
    stored = case["page"].post(
        f"/referrals/{case['newest']}/dispute",
        data={
            "record_id": case["offence"],
            "reason": "The offence was another man's.",
            "csrf_token": csrf_of(step.text),
        },
    )
    assert stored.status_code == 303
    assert stored.headers["location"].startswith(f"/referrals/{case['newest']}#dispute-")
    page = case["page"].get(stored.headers["location"].split("#")[0]).text
    assert f"Dispute of record {case['offence']} recorded" in page
    assert "Disputed records and what-if" in page and "With the record:" in page
    (audited,) = [
        p for p in audit_payloads(case, "referral.disputed") if p["record_id"] == case["offence"]
    ]
    assert audited["probability_before"] is not None and audited["probability_after"] is not None


def test_the_newest_rows_first_then_show_all(case, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.web.reason_view.ROWS_SHOWN", 3)
    monkeypatch.setattr("api.web.reason_view.RUN_LISTED", 2)
    shown = history(case)
    # Newest first: the referral, the late-night school concern, the run of five appointments.
    assert shown.count("<tr") == 1 + 3  # the header row and three rows
    assert "The newest 4 of 10 records about the child and the household" in text(shown)
    show_all = f'href="/referrals/{case["newest"]}?view=all&amp;rows=all#history-title"'
    assert show_all in shown and "Show all 10 records" in text(shown)
    held = re.search(r"(\d+) of the 10 records are not listed here: (\d+) older rows", text(shown))
    assert held and held.groups() == (str(10 - 4), "3")
    # The run keeps its count; it lists its newest two and links to the rest on the full page.
    assert "5 missed health appointments" in text(shown)
    run = shown[
        shown.index('class="repeat-list"') : shown.index("</ul>", shown.index("repeat-list"))
    ]
    assert run.count('<li id="record-event-') == 2
    assert "List the 3 earlier records of this run" in text(run)
    assert f'?view=all&amp;rows=all#record-event-{case["missed"][2]}"' in run
    full = history(case, "?view=all&rows=all")
    assert "Show all" not in full and "10 of 10 records" in text(full)
    assert full.count('<li id="record-event-') == 5
    assert 'name="rows" value="all"' in full  # filtering keeps every row


def test_the_limit_holds_under_a_filter_and_show_all_keeps_the_filter(
    case, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.web.reason_view.ROWS_SHOWN", 1)
    shown = history(case, "?agency=police&view=significant")
    assert "The newest 1 of 2 records" in text(shown) and "(10 in all)" in text(shown)
    assert "?agency=police&amp;view=significant&amp;rows=all#history-title" in shown
