"""Reasons in words: strength instead of log-odds, no double negatives, dates in UK time."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from explain.dates import dated, month_words, span_words, uk_local
from explain.words import (
    MODERATE,
    SLIGHT,
    STRONG,
    effect_words,
    is_double_negative,
    misreadable,
    negations,
    reason_line,
    strength,
)
from features.catalogue import CATALOGUE, Aggregation

# Values every signal is read at: none, one, several, and missing.
VALUES = (0.0, 1.0, 3.0, 400.0, math.nan)
# A pull each way at every strength, and one too small to count.
CONTRIBUTIONS = (2.3, 0.5, 0.1, 0.01, -0.01, -0.1, -0.5, -2.3)


@pytest.mark.parametrize(
    ("contribution", "expected"),
    [
        (STRONG, "strong"),
        (-STRONG, "strong"),
        (STRONG - 1e-9, "moderate"),
        (MODERATE, "moderate"),
        (-(MODERATE - 1e-9), "slight"),
        (SLIGHT, "slight"),
        (SLIGHT - 1e-9, "barely"),
        (0.0, "barely"),
    ],
)
def test_strength_is_graded_by_the_size_of_the_pull_either_way(
    contribution: float, expected: str
) -> None:
    assert strength(contribution) == expected


def test_effect_words_say_the_direction_and_the_strength_without_numbers() -> None:
    assert effect_words(2.28) == "raises priority strongly"
    assert effect_words(-0.3) == "lowers priority moderately"
    assert effect_words(0.06) == "raises priority slightly"
    assert effect_words(0.0) == effect_words(-0.01) == "barely moves priority"
    for c in CONTRIBUTIONS:
        assert not any(ch.isdigit() for ch in effect_words(c))
        assert negations(effect_words(c)) == 0


@pytest.mark.parametrize("signal", CATALOGUE, ids=lambda s: s.name)
def test_no_signal_reads_as_a_double_negative_in_either_direction(signal) -> None:
    values = (0.0, 1.0) if signal.aggregation is Aggregation.exists else VALUES
    for value in values:
        sentence = signal.sentence(value)
        for contribution in CONTRIBUTIONS:
            line = reason_line(sentence, contribution)
            assert not misreadable(line), line


def test_the_checks_catch_the_old_wordings() -> None:
    assert misreadable("The referral does not raise child mental health (raises priority)")
    assert is_double_negative("No earlier referrals closed with no further action")
    assert is_double_negative("No adult unrelated to the child is recorded")
    assert is_double_negative("No injury is reported (no effect)")
    # A decision's quoted name is a name, not a second negation.
    assert not is_double_negative("No earlier referrals closed as \u201cno further action\u201d")


def test_concern_sentences_name_the_concern_without_the_verb_raise() -> None:
    by_name = {s.name: s for s in CATALOGUE}
    assert by_name["concern_neglect"].sentence(1.0) == "The referral's concerns include neglect"
    absent = by_name["concern_child_mental_health"].sentence(0.0)
    assert absent == "The referral's concerns do not include child mental health"
    assert "going missing" in by_name["concern_missing"].sentence(1.0)


def test_uk_local_time_follows_british_summer_time() -> None:
    # 23:30 UTC on 30 March 2026 is 00:30 BST on the 31st; in winter the clocks agree.
    assert uk_local(datetime(2026, 3, 30, 23, 30, tzinfo=UTC)).day == 31
    assert uk_local(datetime(2026, 1, 30, 23, 30, tzinfo=UTC)).hour == 23
    assert uk_local(datetime(2026, 1, 30, 23, 30)).tzname() == "GMT"  # naive reads as UTC
    assert month_words(datetime(2026, 5, 31, 23, 30, tzinfo=UTC)) == "June 2026"


def test_spans_read_as_people_write_them() -> None:
    june, july, august = (datetime(2026, m, 10, tzinfo=UTC) for m in (6, 7, 8))
    assert span_words([august, june, july]) == "June\u2013August 2026"
    assert span_words([june, june]) == "June 2026"
    assert span_words([date(2025, 11, 2), date(2026, 2, 1)]) == "November 2025\u2013February 2026"
    assert span_words([]) == ""
    offence = datetime(2019, 3, 14, 12, tzinfo=UTC)
    sentence = "An adult in the household has a recorded violence offence"
    assert dated(sentence, [offence]) == f"{sentence}, March 2019"
    assert dated("3 referrals", [june, august], older=1) == (
        "3 referrals, June\u2013August 2026 (and 1 older record)"
    )
    assert dated("No records", []) == "No records"
