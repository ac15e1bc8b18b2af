"""The referral page in words (issue 22, items 3 and 4), without a browser: no log-odds, dated
reasons, caveats beside the score, a chronology filtered by query parameters.

The same page in Chromium, with axe and the keyboard: tests/api/test_browser_chronology.py.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import chronology_support as world
import pytest
from access_helpers import csrf_of, sign_in_page, user_headers
from api_support import Switch, scorer  # noqa: F401 (scorer is a fixture)
from fastapi.testclient import TestClient

from api.app import create_app
from api.web.render import day, reason_words, when
from explain.words import misreadable
from features.catalogue import SIGNALS, Source
from models.scorer import Scorer
from triage.settings import Settings
from triage.store.migrate import upgrade

LOG_ODDS = re.compile(r"[+\u2212-]\d+\.\d\d\b|log-odds")
"""A signed decimal such as ``+2.28`` or ``−0.41``, or the word itself."""
TAGS = re.compile(r"<[^>]+>")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, scorer: Scorer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The app with the chronology child, and a practitioner signed in."""
    directory = tmp_path_factory.mktemp("words")
    url = f"sqlite:///{directory / 'triage.db'}"
    upgrade(url)
    settings = Settings(
        var_dir=directory, database_url=url, mlflow_tracking_uri=f"sqlite:///{directory}/ml.db"
    )
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    with TestClient(app, headers=user_headers(settings, "admin")) as api:
        ids = world.build(api)
        detail = api.get(f"/v1/referrals/{ids['newest']}").json()
    page = TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})
    manager = TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})
    with page, manager:
        sign_in_page(page, settings, "practitioner")
        sign_in_page(manager, settings, "manager")
        yield ids | {"page": page, "manager": manager, "detail": detail}


def get(case: dict[str, Any], query: str = "") -> str:
    """The newest referral's page, with ``query`` (``?agency=police``)."""
    response = case["page"].get(f"/referrals/{case['newest']}{query}")
    assert response.status_code == 200, response.text
    return response.text


def section(html: str, title_id: str) -> str:
    """One section of the page, from its heading to the section's end."""
    start = html.index(f'id="{title_id}"')
    return html[start : html.index("</section>", start)]


def text(fragment: str) -> str:
    """A fragment's visible words."""
    return re.sub(r"\s+", " ", htmllib.unescape(TAGS.sub(" ", fragment)))


def test_no_log_odds_anywhere_on_the_page_but_the_api_keeps_its_numbers(case) -> None:
    html = get(case)
    assert not LOG_ODDS.search(html), LOG_ODDS.search(html)
    reasons = case["detail"]["score"]["reasons"]
    assert reasons and all(isinstance(r["contribution"], float) for r in reasons)
    words = text(section(html, "reasons-title"))
    assert re.search(r"raises priority (strongly|moderately|slightly)", words)
    assert "compared with a typical referral" in words
    chart = html[html.index("<svg") : html.index("</svg>")]
    assert re.search(r">(raises|lowers), (strong|moderate|slight)<", chart)


def test_history_reasons_are_dated_and_none_reads_as_a_double_negative(case) -> None:
    html = get(case)
    items = re.findall(r"<summary>(.*?)</summary>", section(html, "reasons-title"), re.S)
    lines = [text(item).strip() for item in items if "priority" in item]
    assert lines and not [line for line in lines if misreadable(line)]
    by_signal = {r["signal"]: r for r in case["detail"]["score"]["reasons"]}
    dated = {
        "missed_health_appointments_365d": "January\u2013March 2026",
        "household_adult_violence_history": "March 2019",
    }
    used = [signal for signal in dated if signal in by_signal]
    assert used, "the test model uses neither signal: pick others"
    for signal in used:
        item = section(html, "reasons-title").split(f'id="why-{signal}"')[1].split("</li>")[0]
        assert dated[signal] in text(item), text(item)
    # Every reason read from records carries a date.
    for reason in case["detail"]["score"]["reasons"]:
        if reason["record_ids"] and SIGNALS[reason["signal"]].source is not Source.referral:
            item = html.split(f'id="why-{reason["signal"]}"')[1].split("</summary>")[0]
            assert re.search(r"(January|February|March|April|May|June|July|August|September"
                             r"|October|November|December) \d{4}", item), item  # fmt: skip


def test_the_caveats_sit_beside_the_score(case) -> None:
    html = get(case)
    score = section(html, "score-title")
    assert "Read the score with care" in score
    assert "It never hears the family" in score and 'href="#unknown-title"' in score
    assert re.search(r"(likely between|anywhere from) \d+%", text(score))
    assert html.index("Read the score with care") < html.index('id="reasons-title"')


def test_the_chronology_reads_in_plain_words_and_uk_time(case) -> None:
    history = section(get(case), "history-title")
    words = text(history)
    assert "<strong>5 missed health appointments</strong>, January\u2013March 2026" in history
    assert "From a health visitor, about neglect" in words
    assert "From a relative, about physical abuse; injury reported (torso or back)" in words
    assert re.search(r"No further action \(front-door decision, \d+ \w{3} \d{4}\)", words)
    assert "Words of advice; DASH risk: medium" in words  # the agency's own outcome
    assert "Bruise on the arm seen in PE" in words  # and summary
    # 23:30 UTC on 30 March 2026 is 00:30 on the 31st in British Summer Time.
    assert "31 Mar 2026, 00:30" in words and "UTC" not in words
    # No lower-case vocabulary codes: agencies, kinds and referrers are named.
    table = history[history.index("<table") :]
    for code in ("missed_appointment", "safeguarding_concern", "individual", " health,"):
        assert code not in text(table), code
    # The violence offence was recorded at the household, 2019.
    assert "At the household" in words and "14 Mar 2019" in words


def test_records_used_by_the_score_link_to_their_reason(case) -> None:
    html = get(case)
    history = section(html, "history-title")
    markers = re.findall(r'<span class="used-by">(.*?</a>.*?)</span>', history, re.S)
    assert markers
    # One link (one Tab stop) per record, to its most influential reason; the rest by number.
    assert all(marker.count("<a ") == 1 for marker in markers)
    for target in set(re.findall(r'href="#(why-[a-z0-9_]+)"', history)):
        assert f'id="{target}"' in html
    # The incident row carries a marker to the police reason, if the model uses one.
    incident = history.split(f'id="record-event-{case["incident"]}"')[1].split("</tr>")[0]
    police = [r for r in case["detail"]["score"]["reasons"] if case["incident"] in r["record_ids"]]
    assert bool(police) == ("Used by the score" in incident)


def test_filters_by_agency_and_significance_through_the_query(case) -> None:
    police = section(get(case, "?agency=police"), "history-title")
    assert 'value="police" id="agency-police" checked' in police
    rows = re.findall(r"<tr[ >].*?</tr>", police[police.index("<tbody>") :], re.S)
    assert len(rows) == 2 and all("Police" in text(r) for r in rows)
    assert "2 of 10 records" in text(police) and "from Police" in text(police)
    assert 'href="/referrals/' in police  # the way back to every record
    significant = section(get(case, "?view=significant"), "history-title")
    assert "missed health appointment" not in text(significant).lower()
    assert "Domestic abuse incident" in significant
    assert 'value="significant" id="view-significant" checked' in significant
    both = section(get(case, "?agency=health&agency=school&view=significant"), "history-title")
    assert "1 of 10 records" in text(both) and "School safeguarding concern" in both


def test_a_reason_whose_records_are_filtered_out_links_to_the_whole_chronology(case) -> None:
    html = get(case, "?agency=school")
    reasons = section(html, "reasons-title")
    for href in re.findall(r'href="([^"]*#record-[^"]+)"', reasons):
        anchor = href.split("#")[1]
        if f'id="{anchor}"' in html:
            assert href == f"#{anchor}"
        else:  # the page with every row and no filter
            assert href == f"/referrals/{case['newest']}?rows=all#{anchor}"


def test_unknown_filter_values_are_said_and_every_record_shown(case) -> None:
    history = section(get(case, "?agency=martians&view=sideways"), "history-title")
    assert "Unknown agency martians" in history and "Unknown view sideways" in history
    assert "10 of 10 records" in text(history)


def test_every_id_on_the_page_is_unique(case) -> None:
    # A reason's anchor once shared its id with the decision form's reason checkbox.
    for query in ("", "?agency=health"):
        ids = re.findall(r'\sid="([^"]+)"', get(case, query))
        assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_the_reason_words_filter_rewords_stored_reasons_for_other_lists() -> None:
    # A score stored before the rewording reads in today's words, with a strength.
    stored = {"signal": "concern_child_mental_health", "value": 0.0, "contribution": 0.3,
              "sentence": "The referral does not raise child mental health"}  # fmt: skip
    line = reason_words(stored)
    expected = "The referral's concerns do not include child mental health"
    assert line == f"{expected} (raises priority moderately)" and not misreadable(line)


def test_pages_show_uk_local_time_in_winter_and_summer() -> None:
    assert when(datetime(2026, 1, 15, 9, 5, tzinfo=UTC)) == "15 Jan 2026, 09:05"  # GMT
    assert when(datetime(2026, 7, 15, 9, 5, tzinfo=UTC)) == "15 Jul 2026, 10:05"  # BST
    assert (
        when(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == "25 Oct 2026, 01:30"
    )  # before 01:00 UTC
    assert when(datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == "25 Oct 2026, 01:30"  # clocks back
    assert day(datetime(2026, 3, 30, 23, 30, tzinfo=UTC)) == "31 Mar 2026"
    assert when(date(2014, 6, 1)) == "1 Jun 2014" and when(None) == "not known"


def test_judge_first_hides_what_the_score_used_from_the_chronology(case) -> None:
    manager = case["manager"]
    token = csrf_of(manager.get("/manager").text)
    try:
        switched = manager.post(
            "/manager/decision-mode", data={"mode": "judge_first", "csrf_token": token}
        )
        assert switched.status_code == 303
        html = get(case)
        assert "Why: what moved the score" not in html
        history = section(html, "history-title")
        assert "5 missed health appointments" in history  # the chronology itself stays
        assert "Used by the score" not in history and 'href="#why-' not in history
    finally:
        manager.post("/manager/decision-mode", data={"mode": "band_shown", "csrf_token": token})
    assert "Used by the score" in section(get(case), "history-title")
