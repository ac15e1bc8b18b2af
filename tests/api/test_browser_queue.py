"""Issue 22, area D in real headless Chromium: the queue grouped by child, the summary card and
"Go to decision", the queue at 390 px, and the researchers' landing page.

As tests/api/test_browser.py (the app under uvicorn in a thread, Debian's Chromium through
Playwright, CSP watched), but axe-core must find no violation at all, of any impact. Every page
is kept as a screenshot in ``test-artifacts/screenshots/`` (names start ``queue-``).
Without Chromium or Playwright the tests skip with the reason; under CI=true they fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from access_helpers import PASSWORD, user_headers
from api_support import T0, Switch, referral, scorer  # noqa: F401 (scorer is a fixture)
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
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

PRACTITIONER = "queue-browser-practitioner"
RESEARCHER = "queue-browser-researcher"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@dataclass
class World:
    """The running service: one child with three open referrals, and two other children."""

    base_url: str
    child_referrals: list[str]
    others: list[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, scorer: Scorer) -> Iterator[World]:  # noqa: F811
    """The app with a model, served over HTTP, a practitioner and a researcher."""
    directory = tmp_path_factory.mktemp("browser-queue")
    url = f"sqlite:///{directory / 'triage.db'}"
    upgrade(url)
    settings = Settings(
        var_dir=directory, database_url=url, mlflow_tracking_uri=f"sqlite:///{directory}/ml.db"
    )
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    admin = user_headers(settings, "admin")
    user_headers(settings, "practitioner", username=PRACTITIONER)
    user_headers(settings, "researcher", username=RESEARCHER)
    with ServerThread(app) as server, httpx.Client(base_url=server.base_url, headers=admin) as api:
        ids = []
        for days_before in (9, 3, 0):
            response = api.post(
                "/v1/referrals", json=referral(received_at=T0 - timedelta(days=days_before))
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["referral_id"])
        others = []
        for child, household in (("C-2001", "H-9"), ("C-2002", "H-10")):
            response = api.post(
                "/v1/referrals", json=referral(child_id=child, household_id=household)
            )
            assert response.status_code == 201, response.text
            others.append(response.json()["referral_id"])
        yield World(base_url=server.base_url, child_referrals=ids, others=others)


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


@pytest.fixture(scope="module")
def axe(browser: Any) -> str:
    """axe-core's source."""
    return axe_source()


@dataclass
class Tab:
    """A browser tab with its console watched."""

    page: Any
    axe: str
    console: list[str] = field(default_factory=list)

    def check(self, name: str) -> None:
        """Screenshot the page as ``queue-<name>``, then fail on any axe violation at all."""
        screenshot(self.page, f"queue-{name}")
        violations = axe_scan(self.page, self.axe)
        assert not violations, f"axe on {name}:\n{describe(violations)}"

    def no_horizontal_scroll(self) -> None:
        """The page is no wider than the viewport (nothing to scroll sideways)."""
        widths = self.page.evaluate(
            "() => ({page: document.documentElement.scrollWidth,"
            " body: document.body.scrollWidth, view: window.innerWidth})"
        )
        wider = self.page.evaluate(
            "() => [...document.querySelectorAll('body *')].filter(e =>"
            " e.getBoundingClientRect().right > window.innerWidth + 0.5).slice(-5).map(e =>"
            " e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className"
            " + ' ' + Math.round(e.getBoundingClientRect().right))"
        )
        assert max(widths["page"], widths["body"]) <= widths["view"], (widths, wider)


def open_tab(browser: Any, axe: str, world: World, viewport: dict[str, int]) -> Tab:
    """A fresh context (no cookies) with the given viewport."""
    context = browser.new_context(base_url=world.base_url, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = Tab(page=page, axe=axe)
    page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
    return tab


@pytest.fixture
def desktop(browser: Any, axe: str, world: World) -> Iterator[Tab]:
    """A 1280 px tab; fails the test on any CSP violation."""
    tab = open_tab(browser, axe, world, DESKTOP)
    yield tab
    tab.page.context.close()
    assert not [c for c in tab.console if "Content Security Policy" in c], tab.console


@pytest.fixture
def phone(browser: Any, axe: str, world: World) -> Iterator[Tab]:
    """A 390 px tab (a phone); fails the test on any CSP violation."""
    tab = open_tab(browser, axe, world, PHONE)
    yield tab
    tab.page.context.close()
    assert not [c for c in tab.console if "Content Security Policy" in c], tab.console


def sign_in(tab: Tab, username: str) -> None:
    """Sign in through the form from the front page; wait for the role's start page."""
    page = tab.page
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path in ("/queue", "/research"))


def test_the_queue_groups_by_child_and_passes_axe(desktop: Tab, world: World) -> None:
    sign_in(desktop, PRACTITIONER)
    page = desktop.page
    group = page.locator("tbody.child-group.several")
    assert group.count() == 1
    assert "3 open referrals" in group.locator("tr.group-head").inner_text()
    links = group.locator("th[scope=row] a").evaluate_all("a => a.map(x => x.pathname)")
    assert sorted(links) == sorted(f"/referrals/{rid}" for rid in world.child_referrals)
    assert "newer record" in group.inner_text()
    page.get_by_text("How the queue is ordered").click()
    assert page.get_by_text("No band can wait indefinitely").is_visible()
    desktop.check("queue-desktop")


def test_the_queue_reflows_at_390_px(phone: Tab, world: World) -> None:
    sign_in(phone, PRACTITIONER)
    phone.no_horizontal_scroll()
    # Each cell says what it is: the column's name shows above its value.
    label = phone.page.locator("table.queue tbody td[data-label='Decision due']").first
    before = label.evaluate("e => getComputedStyle(e, '::before').content")
    assert "Decision due" in before
    phone.check("queue-390px")
    phone.page.goto(f"/referrals/{world.child_referrals[0]}")
    summary = phone.page.locator(".summary-card")
    box = summary.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    phone.check("referral-390px")


def test_keyboard_goes_from_the_summary_card_to_the_decision(desktop: Tab, world: World) -> None:
    page = desktop.page
    sign_in(desktop, PRACTITIONER)
    oldest = world.child_referrals[0]
    page.goto(f"/referrals/{oldest}")
    card = page.locator(".summary-card")
    assert "Other open referrals for this child" in card.inner_text()
    for other in world.child_referrals[1:]:
        assert card.get_by_role("link", name=other).count() == 1
    assert re.search(r"2 newer records about this child", card.inner_text())
    desktop.check("referral-summary")
    # From the top of the page: the skip link, then "Go to decision" within a few Tab stops.
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Skip to main content"
    page.keyboard.press("Enter")
    stops = tab_until(page, lambda f: f["text"] == "Go to decision")
    assert len(stops) <= 10, [s["text"] for s in stops]
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash === '#decision-title'")
    # The next Tab lands in the decision section: its first field.
    page.keyboard.press("Tab")
    assert focused(page)["section"] == "decision-title", focused(page)
    # The contents list reaches every section it names.
    targets = page.locator("nav.contents a").evaluate_all("a => a.map(x => x.getAttribute('href'))")
    for target in targets:
        assert page.locator(target).count() == 1, target


def test_a_researcher_lands_on_the_research_page(desktop: Tab, phone: Tab) -> None:
    for tab, name in ((desktop, "research-desktop"), (phone, "research-390px")):
        sign_in(tab, RESEARCHER)
        page = tab.page
        assert urlsplit(page.url).path == "/research"
        assert page.get_by_role("heading", name="Research access").is_visible()
        assert page.get_by_role("heading", name="How to get a token").is_visible()
        assert page.get_by_role("link", name="Queue").count() == 0
        tab.check(name)
        if tab is phone:
            tab.no_horizontal_scroll()
    # The queue, typed in by hand, sends them back here rather than to a 403.
    desktop.page.goto("/queue")
    assert urlsplit(desktop.page.url).path == "/research"
