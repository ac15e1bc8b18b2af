"""The practice-review chronology as HTML: the section the managers' page shows and the
self-contained, printable file the export writes, from one Jinja2 template.

The templates (``templates/review/``) hold all the markup and escape every value; this module
gives them the filters they read values through. It stays clear of the web package, so the
command line renders the file without loading the service's pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from explain.dates import uk_local


def when(moment: datetime | date | None) -> str:
    """``26 Nov 2026, 10:12`` in UK local time (dates alone as ``1 Jun 2014``), as pages read."""
    if moment is None:
        return "not known"
    if isinstance(moment, datetime):
        local = uk_local(moment)
        return f"{local.day} {local:%b %Y, %H:%M}"
    return f"{moment.day} {moment:%b %Y}"


def _without_log_odds(value: Any) -> Any:
    """A nested stored value less its reasons' contributions: log-odds stay in the JSON file."""
    if isinstance(value, Mapping):
        return {k: _without_log_odds(v) for k, v in value.items() if k != "contribution"}
    if isinstance(value, list):
        return [_without_log_odds(v) for v in value]
    return value


def stored(value: Any) -> str:
    """A stored value as the chronology prints it: as stored, times in UK local time, and no
    reason's contribution (no log-odds on a page; the JSON file holds them exactly)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime | date):
        return when(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "none"
    if isinstance(value, dict | list):
        shown = _without_log_odds(value)
        return json.dumps(shown, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


_ENVIRONMENT = Environment(
    loader=PackageLoader("service", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
)
_ENVIRONMENT.filters.update(
    when=when,
    stored=stored,
    iso=lambda moment: "" if moment is None else moment.isoformat(),
    words=lambda code: "" if code is None else str(code).replace("_", " "),
)
_ENVIRONMENT.globals["service_name"] = "Referral triage"


def chronology_html(document: Mapping[str, Any]) -> Markup:
    """The chronology's section (escaped), for a page to place in its own layout."""
    html = _ENVIRONMENT.get_template("review/_chronology.html").render(document=document)
    return Markup(html)  # safe: rendered by the autoescaping environment above


def review_file_html(document: Mapping[str, Any]) -> str:
    """The self-contained, printable HTML file of a chronology (styles inlined, no links out)."""
    return _ENVIRONMENT.get_template("review/file.html").render(document=document)
