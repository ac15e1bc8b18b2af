"""Dates as people in the UK read them: Europe/London local time, months in words, spans."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def uk_local(moment: datetime) -> datetime:
    """A stored moment in UK local time (a naive one is read as UTC, as the store keeps it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LONDON)


def uk_date(moment: datetime | date) -> date:
    """The UK calendar day a moment fell on."""
    return uk_local(moment).date() if isinstance(moment, datetime) else moment


def month_words(moment: datetime | date) -> str:
    """``March 2019``."""
    return f"{uk_date(moment):%B %Y}"


def span_words(moments: Iterable[datetime | date]) -> str:
    """``March 2019``, ``June–August 2026`` or ``November 2025–February 2026`` ('' if none)."""
    days = sorted(uk_date(m) for m in moments)
    if not days:
        return ""
    first, last = days[0], days[-1]
    if (first.year, first.month) == (last.year, last.month):
        return f"{first:%B %Y}"
    if first.year == last.year:
        return f"{first:%B}\u2013{last:%B %Y}"
    return f"{first:%B %Y}\u2013{last:%B %Y}"


def dated(sentence: str, moments: Iterable[datetime | date], *, older: int = 0) -> str:
    """A reason's sentence with when its records were made: ``…offence, March 2019``."""
    span = span_words(moments)
    if not span:
        return sentence
    more = f" (and {older} older record{'s' if older != 1 else ''})" if older else ""
    return f"{sentence}, {span}{more}"
