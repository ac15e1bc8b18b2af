"""The decision as its own step, without a browser: priority first, check answers, judge first.

The same journeys in headless Chromium, with axe and the keyboard:
tests/api/test_browser_decisions.py.
"""

# ruff: noqa: F811  (fixtures are imported, then requested by name)

from __future__ import annotations

import re
from html import unescape
from typing import Any

from api_support import scorer  # noqa: F401 (a fixture)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from test_pages import app_with_cases, browser, csrf_of, db, sign_in  # noqa: F401

from triage.queue import BANDS
from triage.settings import Settings
from triage.store import AuditEventRow, DecisionRow, ScoreRow
from triage.vocab import PRIORITY_BANDS

PRIORITY_OF = {band: str(priority) for priority, band in PRIORITY_BANDS.items()}


def band_of(db: Engine, referral_id: str) -> str:
    """The referral's latest band."""
    with db.connect() as connection:
        query = select(ScoreRow.band).where(ScoreRow.referral_id == referral_id)
        return connection.scalars(query.order_by(ScoreRow.id)).all()[-1]


def decisions_of(db: Engine, referral_id: str) -> list[tuple[Any, ...]]:
    """(priority, agreement, priority_before_band, rationale) of each stored decision."""
    with db.connect() as connection:
        rows = connection.execute(
            select(
                DecisionRow.priority,
                DecisionRow.agreement,
                DecisionRow.priority_before_band,
                DecisionRow.rationale,
            ).where(DecisionRow.referral_id == referral_id)
        ).all()
    return [tuple(row) for row in rows]


def signed_in(app_with_cases: dict[str, Any], settings: Settings, *roles: str) -> TestClient:
    client = browser(app_with_cases["app"])
    sign_in(client, settings, *roles or ("practitioner",))
    return client


def test_the_step_asks_your_priority_with_nothing_chosen_and_no_band_beside_it(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = signed_in(app_with_cases, settings)
    newest = app_with_cases["newest"]
    html = client.get(f"/referrals/{newest}/decide").text
    assert "What priority would you give this referral?" in html
    radios = re.findall(r'<input type="radio" id="priority-(\w+)" name="priority"[^>]*>', html)
    assert radios == [str(p) for p in PRIORITY_BANDS]  # the queue's order, highest first
    assert " checked" not in html.split('id="priority"')[1].split("</fieldset>")[0]
    assert band_of(db, newest) not in html.split("<main")[1].split("</form>")[0].split("<form")[0]
    assert "agree" not in html.lower().split("<form")[1]


def test_missing_answers_come_back_with_an_error_summary_linking_each_field(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    client = signed_in(app_with_cases, settings)
    newest = app_with_cases["newest"]
    token = csrf_of(client.get(f"/referrals/{newest}/decide").text)
    empty = client.post(f"/referrals/{newest}/decide", data={"csrf_token": token})
    assert empty.status_code == 422
    summary = empty.text.split('class="error-summary"')[1].split("</div>")[0]
    assert re.findall(r'href="#(\w+)"', summary) == ["priority", "decision"]
    assert "Choose the priority you would give" in summary and "Choose a decision" in summary
    forged = client.post(
        f"/referrals/{newest}/decide",
        data={
            "csrf_token": token,
            "priority": "standard",
            "decision": "assessment",
            "reason_codes": ["prior_referrals_365d"],  # a model feature is not a practice code
        },
    )
    assert forged.status_code == 422 and 'href="#reason_codes"' in forged.text


def test_check_your_answers_shows_the_comparison_records_nothing_and_can_change(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = signed_in(app_with_cases, settings)
    newest = app_with_cases["newest"]
    band = band_of(db, newest)
    token = csrf_of(client.get(f"/referrals/{newest}/decide").text)
    answers = {
        "csrf_token": token,
        "priority": PRIORITY_OF[band],
        "decision": "strategy_discussion",
        "reason_codes": ["pattern_of_concerns", "risk_from_an_adult"],
        "rationale": "Third report in two months.",
    }
    check = client.post(f"/referrals/{newest}/decide", data=answers)
    assert check.status_code == 200
    html = check.text
    assert "Check your answers before recording the decision" in html
    assert "The same as the band" in html and f"<dd>{band}</dd>" in html
    assert "A pattern of concerns over time" in html and "Third report in two months." in html
    assert html.count('formaction="/referrals/') == 4  # priority, decision, reasons, rationale
    assert decisions_of(db, newest) == []  # nothing is recorded until it is confirmed
    with db.connect() as connection:
        steps = connection.scalars(
            select(AuditEventRow.payload).where(
                AuditEventRow.action == "referral.viewed", AuditEventRow.entity_id == newest
            )
        ).all()
    assert [p["step"] for p in steps if "step" in p] == ["decide", "check"]
    changed = client.post(f"/referrals/{newest}/decide", data=answers | {"change": "rationale"})
    assert changed.status_code == 200
    assert re.search(r'<textarea id="rationale"[^>]*autofocus[^>]*>Third report', changed.text)
    assert 'value="pattern_of_concerns" checked' in changed.text  # the answers are kept
    recorded = client.post(f"/referrals/{newest}/decision", data=answers)
    assert recorded.status_code == 303 and recorded.headers["location"] == "/queue"
    assert decisions_of(db, newest) == [
        (PRIORITY_OF[band], "agree", False, "Third report in two months.")
    ]


def test_closing_with_an_injury_needs_a_rationale_whichever_priority_is_given(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = signed_in(app_with_cases, settings)
    newest = app_with_cases["newest"]  # the example referral reports an injury
    band = band_of(db, newest)
    step = client.get(f"/referrals/{newest}/decide").text
    assert "Required if you decide no further action" in step and "reports an injury" in step
    token = csrf_of(step)
    for band_given in BANDS:  # agreeing with the band included
        answers = {"csrf_token": token, "priority": PRIORITY_OF[band_given]}
        refused = client.post(
            f"/referrals/{newest}/decide", data=answers | {"decision": "no_further_action"}
        )
        assert refused.status_code == 422, band_given
        # The example is a physical-abuse concern too: the sign-off gate's words come first.
        assert "Explain your decision: a manager signs off this decision" in refused.text
        assert "It is also required because the referral reports an injury" in refused.text
    # Any other decision: no rationale needed, even disagreeing with the band.
    other = BANDS[(BANDS.index(band) + 1) % len(BANDS)]
    fine = client.post(
        f"/referrals/{newest}/decide",
        data={"csrf_token": token, "priority": PRIORITY_OF[other], "decision": "early_help"},
    )
    assert fine.status_code == 200 and "Check your answers" in fine.text


def test_judge_first_hides_the_band_until_the_practitioner_gives_a_priority(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    manager = signed_in(app_with_cases, settings, "manager")
    token = csrf_of(manager.get("/manager").text)
    switched = manager.post(
        "/manager/decision-mode", data={"mode": "judge_first", "csrf_token": token}
    )
    assert switched.status_code == 303
    assert 'value="judge_first" checked' in manager.get("/manager").text

    client = signed_in(app_with_cases, settings)
    newest = app_with_cases["newest"]
    band = band_of(db, newest)
    page = client.get(f"/referrals/{newest}").text
    assert "Estimated chance of" not in page and "Why: what moved the score" not in page
    assert "Give your priority" in page
    first = client.get(f"/referrals/{newest}/decide").text
    assert "Your priority first" in first and 'action="/referrals/' in first
    assert "The model suggests" not in first and "tag-" not in first.split("<main")[1]
    # Straight to the check step without a priority: back to the question.
    token = csrf_of(first)
    skipped = client.post(
        f"/referrals/{newest}/decide",
        data={"csrf_token": token, "priority": "lower", "decision": "early_help"},
    )
    assert skipped.status_code == 303 and skipped.headers["location"].endswith("/decide")
    given = client.post(
        f"/referrals/{newest}/priority", data={"csrf_token": token, "priority": "review_first"}
    )
    assert given.status_code == 303
    reveal = client.get(f"/referrals/{newest}/decide").text
    assert "You gave this referral <strong>Review first</strong> before seeing the band" in reveal
    assert f"The model suggests <strong>{band}</strong>" in reveal
    assert "Estimated chance of" in client.get(f"/referrals/{newest}").text
    answers = {"csrf_token": token, "priority": "review_first", "decision": "strategy_discussion"}
    check = client.post(f"/referrals/{newest}/decide", data=answers)
    assert "given before you saw the band" in check.text
    assert check.text.count('formaction="/referrals/') == 3  # the priority is fixed
    client.post(f"/referrals/{newest}/decision", data=answers)
    expected = "agree" if band == BANDS[0] else "should_be_higher"
    assert decisions_of(db, newest) == [("review_first", expected, True, None)]
    with db.connect() as connection:
        actions = connection.scalars(select(AuditEventRow.action)).all()
    assert "team.decision_mode_changed" in actions and "referral.priority_judged" in actions

    # Another practitioner still sees the band hidden on the other open referral, until
    # they give theirs ("lower": a value, not the enum member's name).
    other = app_with_cases["other"]["referral_id"]
    second = signed_in(app_with_cases, settings)
    assert "Estimated chance of" not in second.get(f"/referrals/{other}").text
    token = csrf_of(second.get(f"/referrals/{other}/decide").text)
    lower = second.post(
        f"/referrals/{other}/priority", data={"csrf_token": token, "priority": "lower"}
    )
    assert lower.status_code == 303
    assert "Estimated chance of" in second.get(f"/referrals/{other}").text


def test_manager_page_reports_backlog_modes_outcomes_and_deidentified_rationales(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = signed_in(app_with_cases, settings, "manager")
    newest = app_with_cases["newest"]
    band = band_of(db, newest)
    other = BANDS[(BANDS.index(band) + 1) % len(BANDS)]
    token = csrf_of(client.get(f"/referrals/{newest}/decide").text)
    client.post(
        f"/referrals/{newest}/decision",
        data={
            "csrf_token": token,
            "priority": PRIORITY_OF[other],
            "decision": "early_help",
            "rationale": "Sam Doe's aunt Kim rang on 02/11/2026: the school has a plan.",
        },
    )
    html = client.get("/manager", params={"weeks": 52}).text
    for heading in (
        "Backlog and timeliness",
        "How practitioners' priorities compare with the band",
        "Overrides against later outcomes",
        "In their words: rationales behind disagreements",
        "How the team decides",
    ):
        assert heading in html
    assert "too few to compare" in html  # three decisions: counts, not percentages
    rationale = unescape(html.split("In their words")[1])
    assert "[name] [name]'s aunt [name] rang on [date]: the school has a plan." in rationale
    assert "Sam" not in rationale and "Kim" not in rationale and newest not in rationale


def _queue_row(html: str, referral_id: str) -> str:
    """The queue's table row for one referral."""
    rows = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    return next(row for row in rows if f'href="/referrals/{referral_id}"' in row)


def test_judge_first_hides_bands_and_reasons_in_the_queue_until_each_priority(
    app_with_cases: dict[str, Any], settings: Settings, db: Engine
) -> None:
    client = signed_in(app_with_cases, settings)
    newest = app_with_cases["newest"]
    band = band_of(db, newest)
    shown = _queue_row(client.get("/queue").text, newest)
    assert f">{band}</span>" in shown and "Band shown after" not in shown
    assert 'name="band"' in client.get("/queue").text

    manager = signed_in(app_with_cases, settings, "manager")
    token = csrf_of(manager.get("/manager").text)
    manager.post("/manager/decision-mode", data={"mode": "judge_first", "csrf_token": token})

    page = client.get("/queue").text
    hidden = _queue_row(page, newest)
    assert f">{band}</span>" not in hidden and "%" not in hidden
    assert "Band shown after you give your priority" in hidden and "Shown with the band" in hidden
    assert 'name="band"' not in page  # filtering by band would show it
    by_url = client.get("/queue", params={"band": band})
    assert by_url.status_code == 422 and "not filtered by band" in by_url.text
    assert f'href="/referrals/{newest}"' not in by_url.text
    token = csrf_of(client.get(f"/referrals/{newest}/decide").text)
    client.post(f"/referrals/{newest}/priority", data={"csrf_token": token, "priority": "lower"})
    assert f">{band}</span>" in _queue_row(client.get("/queue").text, newest)
    # Another practitioner has not given theirs: still hidden for them.
    other = signed_in(app_with_cases, settings)
    assert "Band shown after" in _queue_row(other.get("/queue").text, newest)


def test_judge_first_hides_a_disputes_what_if_until_the_priority(
    app_with_cases: dict[str, Any], settings: Settings
) -> None:
    manager = signed_in(app_with_cases, settings, "manager")
    token = csrf_of(manager.get("/manager").text)
    manager.post("/manager/decision-mode", data={"mode": "judge_first", "csrf_token": token})
    client = signed_in(app_with_cases, settings)
    newest, older = app_with_cases["newest"], app_with_cases["older"][0]
    token = csrf_of(client.get(f"/referrals/{newest}").text)
    disputed = client.post(
        f"/referrals/{newest}/dispute",
        data={"record_id": older, "reason": "About another family.", "csrf_token": token},
    )
    assert disputed.status_code == 303
    page = client.get(f"/referrals/{newest}").text
    assert "About another family." in page and "after you give your own priority" in page
    assert "With the record:" not in page and "%" not in page.split('id="disputes-title"')[1]
    client.post(f"/referrals/{newest}/priority", data={"csrf_token": token, "priority": "lower"})
    assert "With the record:" in client.get(f"/referrals/{newest}").text
