"""The referral page's reasons and chronology in real headless Chromium (issue 22, area C).

The filter works with the keyboard alone and without JavaScript (a GET form: the choices are
query parameters); the "used by the score" marker and a reason's records jump to each other;
a record is disputed with the keyboard alone through its own step; axe-core finds no violation
of any impact; screenshots go to ``test-artifacts/screenshots/``.
The same pages without a browser: tests/api/test_pages_words.py, tests/api/test_pages_history.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import chronology_support as chronology_world
import httpx
import pytest
from access_helpers import PASSWORD, user_headers
from api_support import Switch, scorer  # noqa: F401 (scorer is a fixture)
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    ServerThread,
    axe_scan,
    axe_source,
    describe,
    focused,
    screenshot,
    tab_until,
    unavailable,
)

from api.app import create_app
from models.scorer import Scorer
from triage.settings import Settings
from triage.store.migrate import upgrade

pytestmark = pytest.mark.browser

PRACTITIONER = "chronology-practitioner"
CSP_WORDS = "Content Security Policy"


@dataclass
class World:
    """The running service and the chronology child's ids."""

    base_url: str
    ids: dict[str, Any]

    @property
    def page_path(self) -> str:
        """The newest referral's page."""
        return f"/referrals/{self.ids['newest']}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, scorer: Scorer) -> Iterator[World]:  # noqa: F811
    """The service over HTTP with the chronology child (tests/chronology_support.py)."""
    directory = tmp_path_factory.mktemp("browser-chronology")
    url = f"sqlite:///{directory / 'triage.db'}"
    upgrade(url)
    settings = Settings(
        var_dir=directory, database_url=url, mlflow_tracking_uri=f"sqlite:///{directory}/ml.db"
    )
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    admin = user_headers(settings, "admin")
    user_headers(settings, "practitioner", username=PRACTITIONER)
    with ServerThread(app) as server, httpx.Client(base_url=server.base_url, headers=admin) as api:
        yield World(base_url=server.base_url, ids=chronology_world.build(api))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for the module."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install -e .[dev]")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A signed-in tab whose console is watched for CSP violations and script errors."""

    page: Any
    axe: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self, name: str) -> None:
        """Screenshot the page as ``name``; fail on any axe violation, whatever its impact."""
        screenshot(self.page, name)
        violations = axe_scan(self.page, self.axe)
        assert not violations, f"axe on {name}:\n{describe(violations)}"


@pytest.fixture
def tab(browser: Any, world: World) -> Iterator[Tab]:
    """A fresh context, signed in as the practitioner, on the newest referral's page."""
    context = browser.new_context(base_url=world.base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    watched = Tab(page=page, axe=axe_source())
    page.on("console", lambda message: watched.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    page.goto(f"/login?next={world.page_path}")
    page.get_by_label("Username").fill(PRACTITIONER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == world.page_path)
    yield watched
    context.close()
    csp = [line for line in watched.console if CSP_WORDS in line]
    assert not csp, "CSP violations:\n" + "\n".join(csp)
    assert not watched.errors, "script errors:\n" + "\n".join(watched.errors)


def tab_to(page: Any, element_id: str, *, limit: int = 400) -> int:
    """Press Tab until the element with ``element_id`` has the focus; how many presses."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if focused(page)["id"] == element_id:
            return presses
    raise AssertionError(f"focus never reached #{element_id} in {limit} presses")


def rows(page: Any) -> Any:
    """The chronology's body rows."""
    return page.locator("table.chronology > tbody > tr")


def test_the_reasons_and_chronology_pass_axe_and_read_in_words(tab: Tab) -> None:
    page = tab.page
    reasons = page.locator("ol.reasons > li > details > summary")
    assert reasons.count() >= 8
    for line in reasons.all_text_contents():
        assert re.search(r"\((raises|lowers) priority \w+ly|barely moves priority\)", line), line
        assert not re.search(r"[+\u2212-]\d+\.\d\d", line), line
    caveats = page.get_by_role("note")
    assert "Read the score with care" in caveats.inner_text()
    assert "5 missed health appointments" in page.locator("tr.repeats").inner_text()
    assert "31 Mar 2026, 00:30" in page.locator("table.chronology").inner_text()
    tab.check("chronology-referral")
    # The history alone, as the docs show it (docs/guides/img/referral-chronology.png).
    page.locator('section[aria-labelledby="history-title"]').screenshot(
        path=str(SCREENSHOTS / "chronology-section-only.png")
    )


def test_the_filter_works_from_the_keyboard_without_javascript(tab: Tab, world: World) -> None:
    page = tab.page
    assert page.evaluate("() => document.scripts.length") == 0
    presses = tab_to(page, "agency-police")
    page.keyboard.press("Space")
    assert page.locator("#agency-police").is_checked()
    tab_to(page, "view-all", limit=10)  # the checkboxes, then the radio group: one Tab stop
    page.keyboard.press("ArrowDown")
    assert focused(page)["id"] == "view-significant"
    assert page.locator("#view-significant").is_checked()
    page.keyboard.press("Tab")
    assert focused(page) | {"id": ""} == {
        "tag": "button",
        "id": "",
        "type": "submit",
        "href": "",
        "text": "Show these records",
        "section": "history-title",
    }
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "agency=police" in url)
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"agency": ["police"], "view": ["significant"]}
    assert urlsplit(page.url).fragment == "history-title"
    body = rows(page)
    assert body.count() == 2
    assert all("Police" in text for text in body.all_inner_texts())
    assert "2 of 10 records" in page.locator("table.chronology caption").inner_text()
    assert page.locator("#agency-police").is_checked()  # the choices are kept
    tab.check("chronology-police-significant")
    # The way back to every record is a link, reached by the keyboard.
    back = page.get_by_role("link", name="Show every record")
    back.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).query == "")
    assert "10 of 10 records" in page.locator("table.chronology caption").inner_text()
    assert presses < 120, f"{presses} Tab presses before the filter"


def test_a_repeat_run_opens_with_the_keyboard(tab: Tab, world: World) -> None:
    page = tab.page
    run = page.locator("tr.repeats td > details")
    summary = run.locator("> summary")
    assert "5 missed health appointments" in summary.inner_text()
    assert "January\u2013March 2026" in summary.inner_text()
    assert not run.locator("li").first.is_visible()
    summary.focus()
    page.keyboard.press("Enter")
    assert run.locator("li").count() == 5 and run.locator("li").first.is_visible()
    tab.check("chronology-repeats-open")


def test_used_by_the_score_jumps_to_the_reason_and_back_to_the_record(
    tab: Tab, world: World
) -> None:
    page = tab.page
    offence = f"record-event-{world.ids['offence']}"
    row = page.locator(f"#{offence}")
    marker = row.locator(".used-by a").first
    target = marker.get_attribute("href")
    assert target and target.startswith("#why-")
    marker.click()
    page.wait_for_url(f"**{target}")
    reason = page.locator(target)
    assert reason.is_visible()
    assert "March 2019" in reason.locator("summary").inner_text()
    # The reason lists the record; following it lands on the row.
    reason.locator("summary").click()
    reason.locator(f'a[href="#{offence}"]').click()
    page.wait_for_url(f"**#{offence}")
    assert page.evaluate("() => document.querySelector(':target').id") == offence
    # A record inside a closed run: Chromium opens the run to show it.
    missed = f"record-event-{world.ids['missed'][0]}"
    page.goto(f"{world.page_path}#{missed}")
    assert page.locator(f"#{missed}").is_visible()
    tab.check("chronology-used-by")


def test_on_a_phone_the_chronology_scrolls_in_its_own_box(tab: Tab, world: World) -> None:
    page = tab.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{world.page_path}?agency=health#history-title")
    section = page.locator('section[aria-labelledby="history-title"]')
    widths = section.evaluate("s => [s.scrollWidth, s.clientWidth]")
    assert widths[0] <= widths[1], widths  # the section itself is not wider than the screen
    box = page.locator(".table-scroll")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")  # the table scrolls inside it
    tab.check("chronology-390px")


def test_keyboard_alone_disputes_a_record_through_its_own_step(tab: Tab, world: World) -> None:
    page = tab.page
    school = world.ids["school"]
    step = f"{world.page_path}/dispute?record={school}"
    # One link per record (no form per row): Tab reaches the school record's link.
    assert page.locator("table.chronology textarea").count() == 0
    tab_until(page, lambda f: f["href"] == step)
    assert " ".join(focused(page)["text"].split()) == f"Dispute record {school}"
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == f"{world.page_path}/dispute")
    assert "Bruise on the arm seen in PE" in page.locator("dl.facts").inner_text()
    tab.check("chronology-dispute-step")
    # Sent without a reason: the error summary links to the field, which then has the focus.
    tab_until(page, lambda f: f["text"] == "Dispute and see the what-if")
    page.keyboard.press("Enter")
    page.wait_for_selector(".error-summary")
    assert "Say why the record is wrong" in page.get_by_role("alert").inner_text()
    tab.check("chronology-dispute-error")
    assert focused(page)["id"] == "reason"  # the field with the error takes the focus
    page.keyboard.type("The bruise was recorded for another pupil.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: (urlsplit(url).fragment or "").startswith("dispute-"))
    assert urlsplit(page.url).path == world.page_path
    assert f"Dispute of record {school} recorded" in page.get_by_role("status").inner_text()
    result = page.locator(f"#{urlsplit(page.url).fragment}")
    assert "another pupil" in result.inner_text() and "stored score is not changed" in (
        result.inner_text()
    )
    tab.check("chronology-dispute-what-if")
