"""The decision step in headless Chromium: keyboard only, check your answers, judge first, axe.

Reuses tests/api/test_browser.py's served world, browser and tabs. Every page here must have
no axe-core violations at all (not only no serious ones), and each is kept as a screenshot in
``test-artifacts/screenshots/decision-*.png``.
"""

# ruff: noqa: F811  (fixtures are imported, then requested by name)

from __future__ import annotations

from typing import Any

import pytest
from access_helpers import PASSWORD
from api_support import scorer  # noqa: F401 (a fixture)
from browser_helpers import axe_scan, describe, screenshot
from test_browser import (  # noqa: F401 (fixtures)
    MANAGER,
    PRACTITIONER,
    Visit,
    World,
    axe,
    browser,
    focused,
    queue_links,
    sign_in,
    tab_until,
    visit,
    wait_for_path,
    world,
)

pytestmark = pytest.mark.browser

QUIET = {"injury": {"reported": False, "sites": [], "photographed": False}}


def clean(tab: Visit, name: str) -> None:
    """Screenshot the page as ``decision-<name>``; fail on any axe violation, of any impact."""
    screenshot(tab.page, f"decision-{name}")
    violations = axe_scan(tab.page, tab.axe)
    assert not violations, f"axe on {name}:\n{describe(violations)}"


def keyboard_sign_in(page: Any, username: str) -> None:
    """Sign in with the keyboard alone and land on the queue."""
    page.goto("/login?next=/queue")
    tab_until(page, lambda f: f["id"] == "username")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    wait_for_path(page, "/queue")


def test_keyboard_alone_decides_with_check_your_answers(visit: Visit, world: World) -> None:
    page = visit.page
    mine = world.add_referral(child_id="C-4004", household_id="H-44", concerns=["neglect"], **QUIET)
    keyboard_sign_in(page, PRACTITIONER)
    tab_until(page, lambda f: f["href"] == f"/referrals/{mine}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/referrals/{mine}")
    tab_until(page, lambda f: f["href"] == f"/referrals/{mine}/decide")
    page.keyboard.press("Enter")
    wait_for_path(page, f"/referrals/{mine}/decide")
    clean(visit, "step")

    # Your priority first: one Tab stop, nothing chosen until the arrows choose.
    stops = tab_until(page, lambda f: f["id"].startswith("priority-"))
    assert stops[-1]["id"] == "priority-review_first"
    assert page.locator("input[name=priority]:checked").count() == 0
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert focused(page)["id"] == "priority-standard"
    assert page.locator("#priority-standard").is_checked()
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "decision-no_further_action"  # the next radio group
    for _ in range(2):
        page.keyboard.press("ArrowDown")
    assert page.locator("#decision-early_help").is_checked()
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "reason-injury_or_harm_described"
    between = tab_until(page, lambda f: f["id"] == "reason-protective_factors")
    assert all(f["id"].startswith("reason-") for f in between)
    page.keyboard.press("Space")
    tab_until(page, lambda f: f["id"] == "rationale")
    page.keyboard.type("Grandmother lives in; school reports good attendance.")
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Continue"
    page.keyboard.press("Enter")

    # Check your answers: everything as given, nothing recorded yet.
    page.wait_for_selector("h1:has-text('Check your answers')")
    answers = page.locator("dl.check-answers").inner_text()
    for words in ("Standard", "Early help", "Protective factors", "Grandmother lives in"):
        assert words in answers
    clean(visit, "check-answers")

    # Change the rationale: back to the step with the rationale focused and the answers kept.
    tab_until(page, lambda f: " ".join(f["text"].split()) == "Change the rationale")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Your decision')")
    assert focused(page)["id"] == "rationale"
    assert page.locator("#priority-standard").is_checked()
    assert page.locator("#reason-protective_factors").is_checked()
    page.keyboard.press("End")
    page.keyboard.type(" Health visitor involved.")
    clean(visit, "change-answer")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Check your answers')")
    assert "Health visitor involved." in page.locator("dl.check-answers").inner_text()

    # Record: the last stop of the form, then the queue without the referral.
    stops = tab_until(page, lambda f: f["text"] == "Record the decision")
    assert len(stops) < 30
    page.keyboard.press("Enter")
    wait_for_path(page, "/queue")
    assert f"Decision recorded for referral {mine}" in page.get_by_role("status").inner_text()
    assert not any(link.endswith(f"/referrals/{mine}") for link in queue_links(page))


def _switch_mode(tab: Visit, mode: str) -> None:
    """As the signed-in manager, set the team's decision mode through the manager page."""
    tab.page.goto("/manager")
    tab.page.locator(f"#mode-{mode}").check()
    tab.page.get_by_role("button", name="Save the way of working").click()
    tab.page.wait_for_url("**/manager#decision-mode")


def test_judge_first_in_chromium_and_the_manager_panels(
    browser: Any, visit: Visit, world: World
) -> None:
    mine = world.add_referral(child_id="C-5005", household_id="H-55", **QUIET)
    manager = browser.new_context(base_url=world.base_url, viewport={"width": 1280, "height": 900})
    boss = Visit(page=manager.new_page(), axe=visit.axe)
    sign_in(boss, MANAGER)
    _switch_mode(boss, "judge_first")
    try:
        page = visit.page
        sign_in(visit, PRACTITIONER)
        page.goto(f"/referrals/{mine}")
        assert page.locator("text=Estimated chance of").count() == 0
        clean(visit, "referral-band-hidden")
        page.get_by_role("link", name="Give your priority").first.click()
        wait_for_path(page, f"/referrals/{mine}/decide")
        assert page.get_by_role("heading", level=1).inner_text().endswith("Your priority first")
        clean(visit, "priority-first")
        page.get_by_role("button", name="Save my priority and show the band").click()
        assert "Choose the priority you would give" in page.get_by_role("alert").inner_text()
        clean(visit, "priority-first-error")
        page.get_by_label("Elevated").check()
        page.get_by_role("button", name="Save my priority and show the band").click()
        wait_for_path(page, f"/referrals/{mine}/decide")
        reveal = page.locator(".band-reveal").inner_text()
        assert "You gave this referral Elevated before seeing the band" in reveal
        assert "The model suggests" in reveal
        clean(visit, "band-revealed")
        page.get_by_label("Assessment by children's social care").check()
        page.get_by_role("button", name="Continue").click()
        assert "given before you saw the band" in page.locator("dl.check-answers").inner_text()
        page.get_by_role("button", name="Record the decision").click()
        wait_for_path(page, "/queue")

        boss.page.goto("/manager?weeks=52")
        before = boss.page.locator("tr:has-text('Before seeing the band')").inner_text()
        assert "too few to compare" in before
        assert boss.page.locator("#small-numbers").is_visible()
        clean(boss, "manager-panels")
    finally:
        _switch_mode(boss, "band_shown")
        manager.close()


def test_decision_pages_reflow_at_390_px(browser: Any, world: World, visit: Visit) -> None:
    mine = world.add_referral(child_id="C-6006", household_id="H-66", **QUIET)
    narrow = browser.new_context(base_url=world.base_url, viewport={"width": 390, "height": 844})
    tab = Visit(page=narrow.new_page(), axe=visit.axe)
    try:
        sign_in(tab, PRACTITIONER)
        tab.page.goto(f"/referrals/{mine}/decide")
        tab.page.get_by_label("Lower").check()
        tab.page.get_by_label("Early help").check()
        tab.page.get_by_role("button", name="Continue").click()
        tab.page.wait_for_selector("h1:has-text('Check your answers')")
        width = tab.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the check page is {width} px wide at 390 px"
        clean(tab, "check-answers-390px")
    finally:
        narrow.close()
