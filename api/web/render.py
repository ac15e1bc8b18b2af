"""Rendering pages: the Jinja2 environment, its filters, and HTML responses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.web.sessions import PageSession
from explain.dates import month_words, uk_date, uk_local
from explain.words import reason_line
from features.catalogue import age_words
from service.reason_words import sentence_of

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

BAND_TAGS = {
    "Review first": "tag-review-first",
    "Elevated": "tag-elevated",
    "Standard": "tag-standard",
    "Lower": "tag-lower",
}


def when(moment: datetime | date | None) -> str:
    """``26 Nov 2026, 10:12`` in UK local time (Europe/London; dates alone as ``1 Jun 2014``).

    Practitioners read the clock on the wall: a record stored at 23:30 UTC on 31 March is
    shown on 1 April, 00:30 (British Summer Time). ``<time datetime>`` keeps the exact instant.
    """
    if moment is None:
        return "not known"
    if isinstance(moment, datetime):
        local = uk_local(moment)
        return f"{local.day} {local:%b %Y, %H:%M}"
    return f"{moment.day} {moment:%b %Y}"


def day(moment: datetime | date | None) -> str:
    """The UK calendar day of a moment: ``26 Nov 2026``."""
    return "not known" if moment is None else when(uk_date(moment))


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


ROLE_WORDS = {
    "parent": "parent",
    "step_parent": "step-parent",
    "parent_partner": "partner of a parent",
    "other_relative": "other relative",
    "unrelated_adult": "unrelated adult",
    "child": "child",
}
RECORD_WORDS = {
    "domestic_abuse_perpetrator": "domestic abuse, as the person alleged to have caused harm",
    "domestic_abuse_victim": "domestic abuse, as the person harmed",
    "adult_violence_offence": "violence offence",
    "probation_supervision": "under probation supervision",
    "marac_case": "MARAC case (high-risk domestic abuse)",
    "adult_mental_health_contact": "adult mental health service contact",
    "substance_misuse_treatment": "substance misuse treatment",
    "care_proceedings": "care proceedings about an earlier child",
    "child_removed": "an earlier child removed from their care",
}


def role_words(role: str | None) -> str:
    """A household role in words: ``parent_partner`` → ``partner of a parent``."""
    return "" if role is None else ROLE_WORDS.get(role, words(role))


def record_words(kind: str | None) -> str:
    """An event kind about an adult in words (other kinds as ``words``)."""
    return "" if kind is None else RECORD_WORDS.get(kind, words(kind))


def relative(moment: datetime | None, reference: datetime | None) -> str:
    """How long before or after ``reference`` a moment was: ``3 weeks before``, ``the same day``.

    Days up to two weeks, then weeks up to about three months, then months up to two years,
    then years; always rounded down, so "before" never reads later than it was.
    """
    if moment is None or reference is None:
        return ""
    days = (reference - moment).days if moment <= reference else (moment - reference).days
    side = "before" if moment <= reference else "after"
    if days == 0:
        return "the same day"
    if days < 14:
        amount = f"{days} day{'s' if days != 1 else ''}"
    elif days < 92:
        amount = f"{days // 7} weeks"
    elif days < 730:
        amount = f"{days * 12 // 365} months"
    else:
        amount = f"{days // 365} years"
    return f"{amount} {side}"


def reason_words(reason: Mapping[str, Any]) -> str:
    """A stored reason as a page reads it: ``An injury is reported (raises priority strongly)``.

    The sentence in the catalogue's current words and the pull as a strength, never log-odds
    (for lists such as the queue's main reasons; the referral page adds dates).
    """
    return reason_line(sentence_of(reason), float(reason.get("contribution", 0.0)))


def age(months: int | None) -> str:
    """``4 months`` under two years, else ``7 years`` (as the reasons read ages)."""
    return "" if months is None else age_words(months)


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters.update(
    when=when,
    day=day,
    month=month_words,
    reason_words=reason_words,
    iso=iso,
    hours=hours_words,
    percent=percent,
    words=words,
    age=age,
    role_words=role_words,
    record_words=record_words,
    relative=relative,
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
            "is_casework": actor is not None
            and bool(actor.roles & {"practitioner", "manager", "admin"}),
            **context,
        },
        status_code=status_code,
    )
