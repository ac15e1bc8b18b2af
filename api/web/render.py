"""Rendering pages: the Jinja2 environment, its filters, and HTML responses."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.web.sessions import PageSession
from features.catalogue import age_words

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

BAND_TAGS = {
    "Review first": "tag-review-first",
    "Elevated": "tag-elevated",
    "Standard": "tag-standard",
    "Lower": "tag-lower",
}


def when(moment: datetime | date | None) -> str:
    """``26 Nov 2026, 10:12 UTC`` (dates alone as ``1 Jun 2014``)."""
    if moment is None:
        return "not known"
    if isinstance(moment, datetime):
        return f"{moment.day} {moment:%b %Y, %H:%M} UTC"
    return f"{moment.day} {moment:%b %Y}"


def iso(moment: datetime | date | None) -> str:
    """Machine-readable time for ``<time datetime=…>``."""
    return "" if moment is None else moment.isoformat()


def hours_words(hours: float | None) -> str:
    """A waiting time people read at a glance: ``45 min``, ``3 h 20 min``, ``2 days 4 h``."""
    if hours is None:
        return ""
    minutes = max(round(hours * 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    days, rest = divmod(minutes // 60, 24)
    return f"{days} days {rest} h"


def percent(probability: float | None) -> str:
    """A probability as a whole percentage (``<1%`` rather than ``0%``)."""
    if probability is None:
        return ""
    value = probability * 100
    if 0 < value < 1:
        return "<1%"
    return f"{value:.0f}%"


def words(code: str | None) -> str:
    """A vocabulary code in words: ``should_be_higher`` → ``should be higher``."""
    return "" if code is None else code.replace("_", " ")


def age(months: int | None) -> str:
    """``4 months`` under two years, else ``7 years`` (as the reasons read ages)."""
    return "" if months is None else age_words(months)


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters.update(
    when=when,
    iso=iso,
    hours=hours_words,
    percent=percent,
    words=words,
    age=age,
    band_tag=lambda band: BAND_TAGS.get(band or "", "tag-unscored"),
)
templates.env.globals["service_name"] = "Referral triage"


def page(
    request: Request,
    template: str,
    *,
    session: PageSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A rendered page with the session's CSRF token and notices in its context."""
    actor = getattr(request.state, "page_actor", None)
    return templates.TemplateResponse(
        request,
        template,
        {
            "csrf_token": session.csrf if session is not None else "",
            "notices": session.notices if session is not None else (),
            "actor": actor,
            "username": getattr(request.state, "page_username", None),
            "is_manager": actor is not None and bool(actor.roles & {"manager", "admin"}),
            **context,
        },
        status_code=status_code,
    )
