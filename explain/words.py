"""A reason's pull in words a practitioner can use: strength and direction, never log-odds."""

from __future__ import annotations

import math
import re

STRONG = math.log(2.0)
"""A pull at least this large (in log-odds) would on its own double the odds, or halve them."""
MODERATE = 0.25
"""About a quarter more (or less) likely, compared with a typical referral."""
SLIGHT = 0.05
"""Below this a signal barely moves the score."""

STRENGTH_WORDS = {
    "strong": "on its own it would about double the chance (or halve it)",
    "moderate": "on its own it would make the outcome noticeably more (or less) likely",
    "slight": "on its own it would change the chance a little",
    "barely": "it hardly changes the chance",
}
"""How each strength reads, for the page's key (compared with a typical referral)."""

_ADVERB = {"strong": "strongly", "moderate": "moderately", "slight": "slightly"}

NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without"}
)
"""Words that negate a clause; ``n't`` and ``non-`` / ``un-`` prefixed words count too."""
_NEGATIVE_PREFIXED = frozenset({"unrelated", "unknown", "unrecorded", "unreported", "non-mobile"})
_QUOTED = re.compile(r"\u201c[^\u201d]*\u201d|\"[^\"]*\"")
"""A quoted name (a decision called \u201cno further action\u201d) is a name, not a negation."""


def strength(contribution: float) -> str:
    """How strongly a signal moves this referral, compared with a typical referral."""
    size = abs(contribution)
    if size >= STRONG:
        return "strong"
    if size >= MODERATE:
        return "moderate"
    return "slight" if size >= SLIGHT else "barely"


def effect_words(contribution: float) -> str:
    """``raises priority strongly``, ``lowers priority slightly`` or ``barely moves priority``."""
    grade = strength(contribution)
    if grade == "barely":
        return "barely moves priority"
    verb = "raises" if contribution > 0 else "lowers"
    return f"{verb} priority {_ADVERB[grade]}"


def negations(text: str) -> int:
    """How many negating words a line holds (quoted names left out)."""
    words = re.findall(r"[a-z'\-]+", _QUOTED.sub(" ", text.lower()))
    return sum(1 for w in words if w in NEGATIONS or w.endswith("n't") or w in _NEGATIVE_PREFIXED)


def is_double_negative(text: str) -> bool:
    """True when a line negates twice (``does not ... no``), which readers misread."""
    return negations(text) >= 2


_NEGATED_DIRECTION = re.compile(r"\b(?:not|never|no longer|n't)\s+(?:raise|lower)", re.IGNORECASE)


def misreadable(line: str) -> bool:
    """A double negative, or a negated "raise"/"lower" beside the effect's "raises priority"
    (the old ``does not raise child mental health (raises priority)``)."""
    return is_double_negative(line) or bool(_NEGATED_DIRECTION.search(line))


def reason_line(sentence: str, contribution: float) -> str:
    """A reason as one line: what the records say, then how it moves priority."""
    return f"{sentence} ({effect_words(contribution)})"
