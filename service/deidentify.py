"""Free text with the people taken out: known names, ids, dates, contacts, other proper names.

Rule-based and deliberately heavy-handed: a manager reads rationales to learn what the model
misses, never to identify a family, so any capitalised word inside a sentence that is not a
known service word is treated as a name. The text is shortened to ``MAX_CHARS``.
"""

from __future__ import annotations

import re
from collections.abc import Collection

MAX_CHARS = 600
NAME = "[name]"
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b[A-Z]{1,3}-[A-Za-z0-9][A-Za-z0-9-]*\b"), "[id]"),
    (re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.I), "[postcode]"),
    (re.compile(r"(?<!\w)(\+44\s?|0)\d[\d\s]{8,11}\d\b"), "[phone]"),
    (re.compile(r"\b\d{3}\s?\d{3}\s?\d{4}\b"), "[number]"),
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"), "[date]"),
    (
        re.compile(
            r"\b\d{1,2}(st|nd|rd|th)?\s+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
            r"(\s+\d{4})?\b",
            re.I,
        ),
        "[date]",
    ),
)
SERVICE_WORDS = frozenset(
    {
        "GP", "MASH", "CAMHS", "ED", "A&E", "NHS", "MARAC", "DV", "DA", "CP", "CIN", "S47",
        "School", "Police", "Health", "Housing", "Mum", "Dad", "Mother", "Father", "Nan",
        "I", "The", "A", "An", "No", "Not", "Early", "Help", "Review", "First", "Elevated",
        "Standard", "Lower", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
        "Saturday", "Sunday", "English", "Strategy", "Section",
    }
)  # fmt: skip
"""Capitalised words kept inside a sentence (services, roles, days, the bands)."""
_WORD = re.compile(r"(?<![\w\[])([A-Z][a-zA-Z'’-]+)")
_SENTENCE_START = re.compile(r"(^|[.!?:;]\s+|\n\s*)$")


def deidentify(text: str, *, names: Collection[str] = ()) -> str:
    """``text`` without known names, ids, dates, contacts, or other capitalised names."""
    out = text
    for name in sorted({n for n in names if len(n) > 1}, key=len, reverse=True):
        out = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", NAME, out, flags=re.I)
    for pattern, replacement in PATTERNS:
        out = pattern.sub(replacement, out)
    out = _WORD.sub(lambda m: _keep_or_hide(out, m), out)
    return out if len(out) <= MAX_CHARS else out[: MAX_CHARS - 1].rstrip() + "…"


def _keep_or_hide(text: str, match: re.Match[str]) -> str:
    """A capitalised word kept at a sentence's start or as a service word, else a name."""
    word = match.group(1)
    if word in SERVICE_WORDS or _SENTENCE_START.search(text[: match.start()]):
        return word
    return NAME
