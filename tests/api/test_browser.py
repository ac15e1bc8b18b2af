"""The pages in real headless Chromium: a practitioner's journey, the keyboard, axe, the CSP.

The real app runs under uvicorn in a background thread (lifespan on) with a fitted model and a
few referrals; Debian's Chromium (``/usr/bin/chromium``) is driven by Playwright with
``executable_path``, one browser for the module and a fresh context (cookies) per test. Every
page visited is scanned with axe-core (no violation of any impact) and kept as a
full-page screenshot in ``test-artifacts/screenshots/``. Chromium's console is watched for
Content Security Policy violations in every test.

Without Chromium or Playwright the tests skip with the reason; under CI=true they fail instead.
The same pages without a browser: tests/api/test_pages.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

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
    wait_for_path,
)

from api.app import create_app
from models.scorer import Scorer
from triage.settings import Settings
from triage.store.migrate import upgrade

pytestmark = pytest.mark.browser

PRACTITIONER = "browser-practitioner"
MANAGER = "browser-manager"
CSP_WORDS = "Content Security Policy"


@dataclass
class World:
    """The running service and what the tests need to find their way in it."""

    base_url: str
    admin: dict[str, str]
    newest: str  # the top of the queue: the third referral about a child with history
    older: list[str]  # that child's two earlier referrals, decided

    def add_referral(self, **overrides: Any) -> str:
        """Submit one more open referral through the API; its id."""
        response = httpx.post(
            f"{self.base_url}/v1/referrals", json=referral(**overrides), headers=self.admin
        )
        assert response.status_code == 201, response.text
        return response.json()["referral_id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, scorer: Scorer) -> Iterator[World]:  # noqa: F811
    """As tests/api/test_pages.py's ``app_with_cases``, served over HTTP, with two page users."""
    directory = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{directory / 'triage.db'}"
    upgrade(url)
    settings = Settings(
        var_dir=directory, database_url=url, mlflow_tracking_uri=f"sqlite:///{directory}/ml.db"
    )
    app = create_app(settings, scorer_loader=Switch(scorer), score_backlog_on_start=False)
    admin = user_headers(settings, "admin")
    user_headers(settings, "practitioner", username=PRACTITIONER)
    user_headers(settings, "manager", username=MANAGER)
    with ServerThread(app) as server, httpx.Client(base_url=server.base_url, headers=admin) as api:
        ids = []
        for days_before in (60, 20, 0):
            response = api.post(
                "/v1/referrals", json=referral(received_at=T0 - timedelta(days=days_before))
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["referral_id"])
        other = api.post("/v1/referrals", json=referral(child_id="C-2001", household_id="H-9"))
        assert other.status_code == 201, other.text
        for old in ids[:2]:
            decided = api.post(
                f"/v1/referrals/{old}/decisions",
                json={"decision": "assessment", "agreement": "agree", "reason_codes": []},
            )
            assert decided.status_code == 201, decided.text
        top = api.get("/v1/queue").json()["items"][0]["referral_id"]
        assert top == ids[-1], "the world should put the referral with history at the top"
        yield World(base_url=server.base_url, admin=admin, newest=ids[-1], older=ids[:2])


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
class Visit:
    """A browser tab with its console watched, scanning and keeping each page it is shown."""

    page: Any
    axe: str
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self, name: str) -> None:
        """Screenshot the page as ``name``, then fail on any axe violation, whatever its impact."""
        screenshot(self.page, name)
        violations = axe_scan(self.page, self.axe)
        assert not violations, f"axe on {name}:\n{describe(violations)}"

    def csp_violations(self) -> list[str]:
        """Console lines in which Chromium reports a CSP violation."""
        return [line for line in self.console if CSP_WORDS in line]


@pytest.fixture
def visit(browser: Any, axe: str, world: World) -> Iterator[Visit]:
    """A fresh context (no cookies) and tab; fails the test on any CSP violation it logged."""
    context = browser.new_context(base_url=world.base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    tab = Visit(page=page, axe=axe)
    page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()
    assert not tab.csp_violations(), "CSP violations:\n" + "\n".join(tab.csp_violations())
    assert not tab.errors, "script errors on pages that should run none:\n" + "\n".join(tab.errors)


def sign_in(tab: Visit, username: str, *, check: bool = False) -> None:
    """Sign in through the form and land on the queue."""
    page = tab.page
    response = page.goto("/queue")
    assert response is not None
    assert re.search(r"/login\?next=/queue$", page.url)
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    if check:
        tab.check("login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    wait_for_path(page, "/queue")


def queue_links(page: Any) -> list[str]:
    """The referral links in the queue table, top first."""
    return page.locator("table.queue tbody th a").evaluate_all("links => links.map(a => a.href)")


def test_csp_violations_are_seen(visit: Visit) -> None:
    """The watcher itself: an inline style added by script is refused and reported."""
    visit.page.goto("/login")
    visit.page.evaluate(
        "() => { const s = document.createElement('style');"
        " s.textContent = 'body { color: red }'; document.head.append(s); }"
    )
    visit.page.wait_for_timeout(100)
    assert visit.csp_violations(), visit.console
    visit.console.clear()  # expected here; the fixture fails on any other


def test_practitioner_decides_and_the_referral_leaves_the_queue(visit: Visit, world: World) -> None:
    page = visit.page
    sign_in(visit, PRACTITIONER, check=True)
    # The stylesheet loaded under style-src 'self'.
    header = page.locator(".site-header").evaluate("e => getComputedStyle(e).backgroundColor")
    assert header == "rgb(11, 12, 12)"
    assert page.get_by_role("heading", level=1).inner_text() == "Open referrals"
    assert queue_links(page)[0].endswith(f"/referrals/{world.newest}")
    visit.check("queue")

    # The top referral: its reasons, one expanded, and the record behind it.
    page.locator("table.queue tbody tr").first.get_by_role("link").click()
    page.wait_for_url(f"**/referrals/{world.newest}")
    assert page.get_by_role("heading", level=1).inner_text().startswith(f"Referral {world.newest}")
    reasons = page.locator("ol.reasons > li")
    assert reasons.count() >= 1
    visit.check("referral")
    # A reason read from the child's earlier referrals (the world has no agency events).
    target = f"#record-referral-{world.older[-1]}"
    linked = page.locator(f'ol.reasons details:has(a[href="{target}"])').first
    record_link = linked.locator(f'a[href="{target}"]')
    assert not record_link.is_visible()  # closed until the reason is expanded
    linked.locator("summary").click()
    assert record_link.is_visible()
    record_link.click()
    page.wait_for_url(f"**/referrals/{world.newest}{target}")
    record = page.locator(target)
    assert page.evaluate("() => document.querySelector(':target').id") == target[1:]
    assert record.is_visible() and record.bounding_box() is not None
    # The link scrolled the record into view (to within a pixel: layout is sub-pixel).
    assert record.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= -1 && r.top < innerHeight; }"
    )

    # The decision is its own step. Closing an injury referral without a rationale: the error
    # summary, its link, the answers kept (the whole journey: tests/api/test_browser_decisions.py).
    page.get_by_role("link", name="Record a decision").click()
    wait_for_path(page, f"/referrals/{world.newest}/decide")
    page.get_by_label("Elevated").check()
    page.get_by_label("No further action").check()
    page.get_by_role("button", name="Continue").click()
    summary = page.get_by_role("alert")
    assert "There is a problem" in summary.inner_text()
    # A repeat physical-abuse referral: the checks' sign-off gate and the injury rule, one message.
    words = "Explain your decision: a manager signs off this decision"
    assert words in summary.inner_text()
    assert "the referral reports an injury" in summary.inner_text()
    assert page.get_by_label("Elevated").is_checked()
    assert page.get_by_label("No further action").is_checked()
    visit.check("decision-error-summary")
    summary.get_by_role("link", name=words).click()
    assert page.url.endswith("#rationale")
    assert page.evaluate("() => document.activeElement.id") == "rationale"

    # With a rationale, and early help rather than closing it: check the answers, record, and
    # the referral leaves the queue (closing would wait for a manager: test_browser_checks.py).
    page.keyboard.type("Third report in two months; the injury was seen by a teacher.")
    page.get_by_label("Early help").check()
    page.get_by_label("A record behind the score is wrong or about someone else").check()
    page.get_by_role("button", name="Continue").click()
    assert "Check your answers" in page.get_by_role("heading", level=1).inner_text()
    page.get_by_role("button", name="Record the decision").click()
    wait_for_path(page, "/queue")
    notice = page.get_by_role("status")
    assert f"Decision recorded for referral {world.newest}" in notice.inner_text()
    assert not any(link.endswith(f"/referrals/{world.newest}") for link in queue_links(page))
    visit.check("queue-decision-recorded")
    page.reload()
    assert page.get_by_role("status").count() == 0  # a notice shows once


def test_keyboard_alone_reaches_the_decision_step(visit: Visit, world: World) -> None:
    page = visit.page
    mine = world.add_referral(
        child_id="C-3003",
        household_id="H-33",
        concerns=["neglect"],
        injury={"reported": False, "sites": [], "photographed": False},
    )
    page.goto("/login?next=/queue")
    # Signing in with the keyboard: the skip link comes first, then the form's fields.
    first = tab_until(page, lambda f: f["tag"] == "a")
    assert first[-1]["text"] == "Skip to main content"
    tab_until(page, lambda f: f["id"] == "username")
    page.keyboard.type(PRACTITIONER)
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    wait_for_path(page, "/queue")

    # The skip link takes focus past the header, then Tab reaches the referral's link.
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Skip to main content"
    page.keyboard.press("Enter")
    tab_until(page, lambda f: f["href"] == f"/referrals/{mine}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/referrals/{mine}")

    # The decision is its own step, one link away (its keyboard journey, check your answers
    # included: tests/api/test_browser_decisions.py).
    tab_until(page, lambda f: f["href"] == f"/referrals/{mine}/decide")
    page.keyboard.press("Enter")
    wait_for_path(page, f"/referrals/{mine}/decide")


def test_manager_and_error_pages_pass_axe(visit: Visit, world: World) -> None:
    page = visit.page
    sign_in(visit, MANAGER)
    page.get_by_role("link", name="Team learning").click()
    page.wait_for_url("**/manager")
    assert page.get_by_role("heading", level=1).inner_text() == "Team learning"
    page.get_by_label("Weeks to show").select_option("52")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/manager?weeks=52")
    visit.check("manager")
    response = page.goto("/referrals/R-nope")
    assert response is not None and response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Referral not found"
    visit.check("error-not-found")
    response = page.goto("/queue?min_age=old&band=Urgent")
    assert response is not None and response.status == 422
    visit.check("queue-filter-errors")
