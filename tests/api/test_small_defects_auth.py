"""Smaller defects of issue 17: forged queue cursors, formulas in CSV exports, the docs' assets."""

from __future__ import annotations

import base64
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from access_helpers import PASSWORD, user_headers
from fastapi.testclient import TestClient

from api.app import create_app
from explain.batch_scores import write_scores
from triage.exports import neutralise_cell
from triage.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app without a model; server errors come back as 500s, not exceptions."""
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


# --- (a) forged queue cursors --------------------------------------------------------------


def forged(*parts: Any) -> str:
    """A cursor as the service encodes one, with any content."""
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


WHEN = "2026-04-20T10:00:00+00:00"
# Version 2: [version, tier, look-by time, minus the probability, referral id].
FORGED_CURSORS = {
    "huge tier": forged(2, 10**30, WHEN, -0.5, "R-1"),
    "negative tier": forged(2, -(10**30), WHEN, -0.5, "R-1"),
    "tier as text": forged(2, "3", WHEN, -0.5, "R-1"),
    "probability past float": base64.urlsafe_b64encode(
        b'[2, 3, "2026-04-20T10:00:00+00:00", -1e400, "R-1"]'
    ).decode(),
    "infinite probability": base64.urlsafe_b64encode(
        b'[2, 3, "2026-04-20T10:00:00+00:00", Infinity, "R-1"]'
    ).decode(),
    "NaN probability": base64.urlsafe_b64encode(
        b'[2, 3, "2026-04-20T10:00:00+00:00", NaN, "R-1"]'
    ).decode(),
    "date off the calendar in UTC": forged(2, 3, "0001-01-01T00:00:00+05:00", -0.5, "R-1"),
    "naive date": forged(2, 3, "2026-04-20T10:00:00", -0.5, "R-1"),
    "id not text": forged(2, 3, WHEN, -0.5, ["R-1"]),
    "id too long": forged(2, 3, WHEN, -0.5, "R-" + "9" * 200),
    "an old version": forged(1, 3, -0.5, WHEN, "R-1"),
    "not a list": forged({"tier": 3}),
    "garbage": "!!not*base64~~",
    "not JSON": base64.urlsafe_b64encode(b"\xff\xfe").decode(),
}


@pytest.mark.parametrize("name", FORGED_CURSORS)
def test_a_forged_cursor_is_a_422_naming_the_field(
    client: TestClient, settings: Settings, name: str
) -> None:
    headers = user_headers(settings, "practitioner")
    response = client.get("/v1/queue", params={"cursor": FORGED_CURSORS[name]}, headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    assert body["errors"] == [
        {"field": "query.cursor", "reason": "not a cursor this service issued"}
    ]


def test_a_real_cursor_still_pages(client: TestClient, settings: Settings) -> None:
    from service.casework import decode_cursor, encode_cursor

    issued = encode_cursor((3, pd.Timestamp(WHEN).to_pydatetime(), -0.31, "R-3fa9"))
    assert decode_cursor(issued)[0] == 3 and decode_cursor(issued)[3] == "R-3fa9"
    headers = user_headers(settings, "practitioner")
    assert client.get("/v1/queue", params={"cursor": issued}, headers=headers).status_code == 200


def test_a_forged_cursor_on_the_queue_page_gets_a_friendly_message(
    client: TestClient, settings: Settings
) -> None:
    user_headers(settings, "practitioner", username="page-pat")
    client.headers["Accept"] = "text/html"
    form = client.get("/login")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    signed_in = client.post(
        "/login",
        data={"username": "page-pat", "password": PASSWORD, "csrf_token": csrf.group(1)},
    )
    assert signed_in.status_code == 303
    page = client.get("/queue", params={"cursor": FORGED_CURSORS["huge tier"]})
    assert page.status_code == 422
    assert "This page link is not valid: start again" in page.text


# --- (b) CSV exports -----------------------------------------------------------------------


def test_score_csv_neutralises_formula_cells_and_keeps_numbers(tmp_path: Path) -> None:
    scores = pd.DataFrame(
        {
            "referral_id": ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "R-ok"],
            "probability": [0.1, 0.2, 0.3, 0.4, 0.5],
            "band": ["\tReview first", "\rLower", "Lower", "＝1+1", "Elevated"],
            "reason_1_contribution": [-0.25, 0.5, -1.0, 0.0, -0.125],
        }
    )
    path = write_scores(scores, tmp_path / "scores.csv")
    back = pd.read_csv(path, keep_default_na=False)
    assert list(back["referral_id"]) == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "R-ok",
    ]
    assert list(back["band"]) == ["'\tReview first", "'\rLower", "Lower", "'＝1+1", "Elevated"]
    # Numbers stay numbers, negative ones included.
    assert back["reason_1_contribution"].tolist() == [-0.25, 0.5, -1.0, 0.0, -0.125]
    assert back["probability"].dtype.kind == "f"
    # No line of the file starts a text cell with a formula sign, whatever the quoting.
    with path.open(newline="") as handle:
        for row in list(csv.reader(handle))[1:]:
            assert not [cell for cell in row if cell.startswith(("=", "+", "@", "\t", "\r"))]


def test_neutralise_cell_touches_text_only() -> None:
    assert neutralise_cell("-x") == "'-x"
    assert neutralise_cell(-3) == -3
    assert neutralise_cell(-0.5) == -0.5
    assert neutralise_cell(None) is None
    assert neutralise_cell("R-1") == "R-1"


PACKAGES_AND_SCRIPTS = (
    *("triage", "features", "models", "explain", "service", "api", "serving", "cli"),
    *("bench", "scripts"),
)


def test_every_csv_the_project_writes_goes_through_one_helper() -> None:
    writers = re.compile(r"\.to_csv\(|csv\.writer\(|csv\.DictWriter\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in (
            "api",
            "service",
            "serving",
            "explain",
            "features",
            "models",
            "triage",
            "bench",
            "scripts",
        )
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "triage" / "exports.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if writers.search(line)
    ]
    assert offenders == []


# --- (c) the docs' assets ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_load_nothing_from_elsewhere_and_allow_no_inline_script(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    html = response.text
    assert re.search(r"(src|href)=\"(https?:)?//", html) is None, html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="/' in tag and not body.strip() for tag, body in scripts)
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
        if part.strip()
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "http" not in response.headers["content-security-policy"]
    # Every script and stylesheet the page names is served here.
    assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", html)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_the_docs_render_in_chromium_without_csp_violations(settings: Settings) -> None:
    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, ServerThread, unavailable

    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install -e .[dev]")
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    with ServerThread(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            console: list[str] = []
            requested: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.on("pageerror", lambda error: console.append(str(error)))
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server.base_url}/docs")
            title = page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert title is not None and "Referral triage" in title.inner_text()
            page.wait_for_selector(".opblock-tag", timeout=30_000)
        finally:
            browser.close()
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []
    assert all(url.startswith(server.base_url) for url in requested), requested
