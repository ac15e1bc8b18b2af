"""Helpers for tests/api/test_browser.py: the app under uvicorn in a thread, Chromium, axe-core.

Chromium is Debian's package at ``/usr/bin/chromium``, driven by Playwright with
``executable_path``: the tests never download a browser (never run ``playwright install``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn

# Debian's package; TRIAGE_TEST_CHROMIUM points elsewhere (another Chromium build, or a missing
# path to see the skip).
CHROMIUM = Path(os.environ.get("TRIAGE_TEST_CHROMIUM", "/usr/bin/chromium"))
# The flags from shared/reference/stack-notes.md. Playwright gives every launch a fresh,
# temporary user-data directory of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


def unavailable(reason: str) -> None:
    """Skip with ``reason``, but fail under CI=true: there the browser tests must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run, not skip)")
    pytest.skip(reason)


class ServerThread:
    """The app under uvicorn (lifespan on) in a background thread, on a free 127.0.0.1 port."""

    def __init__(self, app: Any) -> None:
        # Bind first and hand uvicorn the socket: no window for another process to take the port.
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        # log_config=None leaves the test session's log capture alone; uvicorn's access log
        # prints raw paths, which the service's own JSON access log replaces.
        config = uvicorn.Config(
            app, lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True, name="uvicorn"
        )

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


def axe_source() -> str:
    """axe-core's script, as the ``axe-playwright-python`` package ships it (no download)."""
    try:
        from axe_playwright_python.base import AXE_SCRIPT
    except ImportError:
        unavailable(
            "axe-playwright-python (axe-core's script) is not installed: pip install -e .[dev]"
        )
    return AXE_SCRIPT


def axe_scan(page: Any, source: str) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; return its violations.

    The pages' CSP (``default-src 'none'``, no ``script-src``) refuses any script the page
    itself adds, so ``page.add_script_tag`` would be blocked, and a ``bypass_csp`` context would
    switch off the very policy the tests check. Code evaluated through the DevTools protocol
    (``page.evaluate``) is not subject to the page's CSP, so axe is evaluated from its source,
    in the same context as the rest of the journey, with the CSP still enforced.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    return page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.map(n => n.target.join(' '))})))"
    )


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation: id, impact, help and the first few targets."""
    return "\n".join(
        f"  {v['id']} ({v['impact']}): {v['help']} at {', '.join(v['targets'][:5])}"
        for v in violations
    )


def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot kept as a test artifact: test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for_path(page: Any, path: str) -> None:
    """Wait until the tab has navigated to ``path`` (``**/queue`` would match ``?next=/queue``)."""
    page.wait_for_url(lambda url: urlsplit(url).path == path)


def focused(page: Any) -> dict[str, str]:
    """What has the keyboard focus: tag, id, type, href, text, and the section it is in."""
    return page.evaluate(
        "() => { const e = document.activeElement; const s = e.closest('section');"
        " return {tag: e.tagName.toLowerCase(), id: e.id, type: e.type || '',"
        " href: e.getAttribute('href') || '', text: (e.innerText || '').trim(),"
        " section: s ? (s.getAttribute('aria-labelledby') || '') : ''}; }"
    )


def tab_until(page: Any, wanted: Any, *, limit: int = 400) -> list[dict[str, str]]:
    """Press Tab until ``wanted(focused)``; every element focused on the way, the last included."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        seen.append(focused(page))
        if wanted(seen[-1]):
            return seen
    raise AssertionError(f"focus never reached the element after {limit} presses: {seen[-5:]}")
