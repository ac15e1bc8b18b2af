"""The checks pages in real headless Chromium: keyboard-only journeys, axe-core, screenshots.

As tests/api/test_browser.py: the real app under uvicorn in a thread (no model needed here),
Debian's Chromium through Playwright, axe-core evaluated with the pages' CSP still on. Every
page visited is kept as a full-page screenshot in ``test-artifacts/screenshots/checks-*.png``
and must have no axe violation at all (any impact). Without Chromium or Playwright the tests
skip with the reason; under CI=true they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from access_helpers import PASSWORD, user_headers
from api_support import referral
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
    wait_for_path,
)

from api.app import create_app
from triage.settings import Settings
from triage.store.migrate import upgrade

pytestmark = pytest.mark.browser

PRACTITIONER = "checks-practitioner"
MANAGER = "checks-manager"
OTHER_MANAGER = "checks-manager-2"


@dataclass
class World:
    """The running service, an admin's API headers, and a way to add referrals."""

    base_url: str
    admin: dict[str, str]

    def add_referral(self, **overrides: Any) -> str:
        """A new open physical-abuse referral received an hour ago; its id."""
        body = referral(received_at=datetime.now(UTC) - timedelta(hours=1), **overrides)
        response = httpx.post(f"{self.base_url}/v1/referrals", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return str(response.json()["referral_id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The app served over HTTP with a practitioner and two managers (no model: not needed)."""
    directory = tmp_path_factory.mktemp("browser-checks")
    url = f"sqlite:///{directory / 'triage.db'}"
    upgrade(url)
    settings = Settings(
        var_dir=directory, database_url=url, mlflow_tracking_uri=f"sqlite:///{directory}/ml.db"
    )
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    admin = user_headers(settings, "admin")
    user_headers(settings, "practitioner", username=PRACTITIONER)
    user_headers(settings, "manager", username=MANAGER)
    user_headers(settings, "manager", username=OTHER_MANAGER)
    with ServerThread(app) as server:
        yield World(base_url=server.base_url, admin=admin)


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
    """A browser tab whose console is watched; ``check`` screenshots and scans the page."""

    page: Any
    axe: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self, name: str) -> None:
        """Screenshot as ``checks-<name>``; fail on any axe violation, whatever its impact."""
        screenshot(self.page, f"checks-{name}")
        violations = axe_scan(self.page, self.axe)
        assert not violations, f"axe on {name}:\n{describe(violations)}"


@pytest.fixture
def tab(browser: Any, world: World) -> Iterator[Tab]:
    """A fresh context and tab; fails on any CSP violation or script error it saw."""
    context = browser.new_context(base_url=world.base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    watched = Tab(page=page, axe=axe_source())
    page.on("console", lambda message: watched.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    yield watched
    context.close()
    csp = [line for line in watched.console if "Content Security Policy" in line]
    assert not csp, "CSP violations:\n" + "\n".join(csp)
    assert not watched.errors, "script errors:\n" + "\n".join(watched.errors)


def sign_in(tab: Tab, username: str, next_path: str) -> None:
    """Sign in with the keyboard alone and land on ``next_path``."""
    page = tab.page
    page.goto(f"/login?next={next_path}")
    page.locator("#username").focus()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    wait_for_path(page, next_path)


def choose_radio(page: Any, group_first_id: str, wanted_id: str) -> None:
    """With focus on a radio group's first radio, arrow down until ``wanted_id`` is chosen."""
    assert focused(page)["id"] == group_first_id
    for _ in range(10):
        if focused(page)["id"] == wanted_id:
            break
        page.keyboard.press("ArrowDown")  # moves and checks
    if not page.locator(f"#{wanted_id}").is_checked():
        page.keyboard.press("Space")  # the group's first radio, focused by Tab, is not checked
    assert page.locator(f"#{wanted_id}").is_checked()


def test_keyboard_alone_asks_an_agency_and_records_its_reply(tab: Tab, world: World) -> None:
    page = tab.page
    rid = world.add_referral()
    sign_in(tab, PRACTITIONER, f"/referrals/{rid}")
    tab.check("referral-section-empty")

    # From the referral page to the request form by Tab and Enter.
    tab_until(page, lambda f: f["href"] == f"/referrals/{rid}/checks/request")
    page.keyboard.press("Enter")
    wait_for_path(page, f"/referrals/{rid}/checks/request")
    tab.check("request-form")
    # Submitting empty: the error summary takes the focus-able links to each field.
    tab_until(page, lambda f: f["tag"] == "button" and f["text"] == "Send the request")
    page.keyboard.press("Enter")
    page.wait_for_selector(".error-summary")
    tab.check("request-form-errors")
    assert page.get_by_role("alert").get_by_role("link").count() == 2
    page.get_by_role("link", name="Choose the agency to ask").focus()
    page.keyboard.press("Enter")
    assert page.url.endswith("#agency")

    # The form in order: the agency radios (one Tab stop), the question, the due time, send.
    page.goto(f"/referrals/{rid}/checks/request")
    tab_until(page, lambda f: f["id"].startswith("agency-"))
    choose_radio(page, "agency-police", "agency-school")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "question"
    page.keyboard.type("Attendance this term, and any safeguarding concerns?")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "due"
    page.keyboard.press("ArrowUp")  # "Within 4 hours", above the default 24
    assert page.locator("#due").input_value() == "4"
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Send the request"
    page.keyboard.press("Enter")
    wait_for_path(page, f"/referrals/{rid}")
    assert "Request sent to School." in page.get_by_role("status").inner_text()
    assert (
        "1 check awaiting a reply"
        in page.locator("section[aria-labelledby=checks-title]").inner_text()
    )
    tab.check("referral-section-awaiting")

    # The reply, recorded by the practitioner with the keyboard.
    tab_until(page, lambda f: f["href"].startswith("/checks/") and f["href"].endswith("/reply"))
    assert "Record the reply from School" in page.evaluate(
        "() => document.activeElement.textContent.replace(/\\s+/g, ' ').trim()"
    )
    page.keyboard.press("Enter")
    page.wait_for_url("**/reply")
    tab.check("reply-form")
    tab_until(page, lambda f: f["id"].startswith("outcome-"))
    choose_radio(page, "outcome-not_known", "outcome-known_with_concerns")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "summary"
    page.keyboard.type("Attendance 61% this term; two unexplained bruises noted in October.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    wait_for_path(page, f"/referrals/{rid}")
    section = page.locator("section[aria-labelledby=checks-title]").inner_text()
    assert "Known, with concerns" in section and "No checks awaiting a reply" in section
    tab.check("referral-section-replied")


def test_keyboard_alone_records_facts_and_a_strategy_discussion(tab: Tab, world: World) -> None:
    page = tab.page
    rid = world.add_referral()
    sign_in(tab, PRACTITIONER, f"/referrals/{rid}/facts")
    tab.check("facts-form")
    # Seen alone before seen: the error names the question, and the answers are kept.
    # Tab enters a radio group on its checked radio ("Leave as it is", the last); Down wraps.
    tab_until(page, lambda f: f["id"].startswith("child_seen_alone-"))
    assert focused(page)["id"] == "child_seen_alone-unchanged"
    page.keyboard.press("ArrowDown")
    assert page.locator("#child_seen_alone-yes").is_checked()
    tab_until(page, lambda f: f["tag"] == "button")
    page.keyboard.press("Enter")
    page.wait_for_selector(".error-summary")
    assert "seen alone only once recorded as seen" in page.get_by_role("alert").inner_text()
    assert page.locator("#child_seen_alone-yes").is_checked()
    tab.check("facts-form-errors")

    # Seen: the first radio group; Tab from the page's top reaches it.
    page.locator("h1").click()
    tab_until(page, lambda f: f["id"].startswith("child_seen-"))
    page.keyboard.press("ArrowDown")
    assert page.locator("#child_seen-yes").is_checked()
    tab_until(page, lambda f: f["id"].startswith("carer_account-"))
    choose_radio(page, focused(page)["id"], "carer_account-partly_corroborated")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "carer_note"
    page.keyboard.type("Mother says he fell from a bike; the school saw no bike injury.")
    tab_until(page, lambda f: f["tag"] == "button")
    page.keyboard.press("Enter")
    wait_for_path(page, f"/referrals/{rid}")
    facts = page.locator("section[aria-labelledby=checks-title] dl.facts").inner_text()
    assert "Child seen" in facts and "Child seen alone" in facts
    assert "others partly corroborate it" in facts

    # A strategy discussion: the three required agencies ticked with Space.
    page.goto(f"/referrals/{rid}/strategy")
    tab.check("strategy-form")
    for agency in ("social_care", "police", "health"):
        tab_until(page, lambda f, a=agency: f["id"] == f"attendee-{a}")
        page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "role-health"
    page.keyboard.type("Named nurse")
    tab_until(page, lambda f: f["id"].startswith("outcome-"))
    choose_radio(page, "outcome-section_47_enquiry", "outcome-section_47_enquiry")
    tab_until(page, lambda f: f["tag"] == "button")
    page.keyboard.press("Enter")
    wait_for_path(page, f"/referrals/{rid}")
    section = page.locator("section[aria-labelledby=checks-title]").inner_text()
    assert (
        "Section 47 enquiry" in section
        and "Health (community and hospital): Named nurse." in section
    )
    tab.check("referral-section-full")
    # The section alone, as the docs show it.
    page.locator("section[aria-labelledby=checks-title]").screenshot(
        path=str(SCREENSHOTS / "checks-section-only.png")
    )


def test_a_manager_signs_off_a_held_decision_with_the_keyboard(
    browser: Any, tab: Tab, world: World
) -> None:
    page = tab.page
    # A child of its own: checks recorded in the other tests about C-1042 would count here.
    rid = world.add_referral(child_id="C-5005", household_id="H-55")
    sign_in(tab, PRACTITIONER, f"/referrals/{rid}/decide")
    page.locator("#priority-standard").check()
    page.locator("#decision-no_further_action").check()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector(".error-summary")
    assert "a manager signs off this decision" in page.get_by_role("alert").inner_text()
    assert page.locator("#decision-no_further_action").is_checked()  # the answers are kept
    tab.check("decision-needs-rationale")
    page.locator(".error-summary a[href='#rationale']").click()
    assert page.evaluate("() => document.activeElement.id") == "rationale"
    page.keyboard.type("Seen by the school nurse today; the mark fits a fall in PE.")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("#sign-off-needed")  # check your answers says a manager signs off
    assert "not recorded as seen" in page.locator("#sign-off-needed").inner_text()
    page.get_by_role("button", name="Record the decision").click()
    wait_for_path(page, "/queue")
    assert "needs a manager's sign-off" in page.get_by_role("status").inner_text()
    assert page.locator(f'a[href="/referrals/{rid}"]').count() >= 1  # still in the queue

    manager = browser.new_context(base_url=world.base_url, viewport={"width": 1280, "height": 900})
    other = Tab(page=manager.new_page(), axe=tab.axe)
    try:
        sign_in(other, MANAGER, "/sign-offs")
        other.check("sign-offs-list")
        mpage = other.page
        tab_until(mpage, lambda f: f["href"] == f"/referrals/{rid}/sign-off")
        mpage.keyboard.press("Enter")
        wait_for_path(mpage, f"/referrals/{rid}/sign-off")
        other.check("sign-off-form")
        tab_until(mpage, lambda f: f["id"].startswith("verdict-"))
        choose_radio(mpage, "verdict-sign_off", "verdict-send_back")
        tab_until(mpage, lambda f: f["tag"] == "button")
        mpage.keyboard.press("Enter")  # sending back needs a note
        mpage.wait_for_selector(".error-summary")
        other.check("sign-off-form-errors")
        mpage.get_by_role("link", name="Say why the decision is sent back").focus()
        mpage.keyboard.press("Enter")
        assert mpage.evaluate("() => document.activeElement.id") == "note"
        mpage.keyboard.type("Not this time:")  # then sign off instead
        mpage.locator("#verdict-send_back").focus()
        mpage.keyboard.press("ArrowUp")
        assert mpage.locator("#verdict-sign_off").is_checked()
        tab_until(mpage, lambda f: f["tag"] == "button")
        mpage.keyboard.press("Enter")
        wait_for_path(mpage, "/sign-offs")
        assert "signed off: it has left the queue" in mpage.get_by_role("status").inner_text()
        assert mpage.locator(f'a[href="/referrals/{rid}/sign-off"]').count() == 0
        other.check("sign-offs-after")
    finally:
        manager.close()
    page.goto("/queue")
    assert page.locator(f'a[href="/referrals/{rid}"]').count() == 0


def test_the_checks_forms_reflow_at_390_pixels(browser: Any, world: World) -> None:
    rid = world.add_referral()
    context = browser.new_context(base_url=world.base_url, viewport={"width": 390, "height": 844})
    phone = Tab(page=context.new_page(), axe=axe_source())
    try:
        sign_in(phone, MANAGER, f"/referrals/{rid}/strategy")
        for path in ("checks/request", "strategy", "facts", "sign-off"):
            phone.page.goto(f"/referrals/{rid}/{path}")
            width = phone.page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width} px wide at 390 px"
            phone.check(f"390-{path.replace('/', '-')}")
        phone.page.goto("/sign-offs")
        assert phone.page.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
