"""A score's reasons as a page shows them: dated sentences, strength in words, no log-odds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from explain.dates import dated
from explain.words import effect_words, strength
from features.catalogue import SIGNALS, Source


def record_dates(
    timeline: Sequence[Mapping[str, Any]], panel: Mapping[str, Any] | None
) -> dict[tuple[str, bool], datetime]:
    """When each record the page holds was made, by (record id, is a decision)."""
    found: dict[tuple[str, bool], datetime] = {}
    for item in timeline:
        found[(item["record_id"], item["kind"] == "decision")] = item["at"]
    if panel is not None:
        for person in [*panel["members"], *panel["others_behind_reasons"]]:
            for membership in person["memberships"]:
                found.setdefault((membership["membership_id"], False), membership["joined_at"])
            for record in person["records"]:
                found.setdefault((record["record_id"], False), record["at"])
    return found


def sentence_of(reason: Mapping[str, Any]) -> str:
    """The reason's sentence in the catalogue's current words (stored text as a fallback)."""
    signal = SIGNALS.get(reason["signal"])
    value = reason.get("value")
    if signal is None:
        return str(reason.get("sentence", ""))
    return signal.sentence(math.nan if value is None else float(value))


def page_reason(
    reason: Mapping[str, Any], *, rank: int, dates: Mapping[tuple[str, bool], datetime]
) -> dict[str, Any]:
    """One reason for the page: its dated sentence and its effect in words, never a number."""
    signal = SIGNALS.get(reason["signal"])
    from_decisions = signal is not None and signal.source is Source.decisions
    sentence = sentence_of(reason)
    ids = list(reason.get("record_ids", ()))
    if signal is not None and signal.source is not Source.referral and ids:
        known = [dates[(rid, from_decisions)] for rid in ids if (rid, from_decisions) in dates]
        older = int(reason.get("records_omitted", 0)) + len(ids) - len(known)
        sentence = dated(sentence, known, older=older)
    contribution = float(reason["contribution"])
    grade = strength(contribution)
    direction = "raises" if contribution > 0 else "lowers"
    return {
        "signal": reason["signal"],
        "rank": rank,
        "anchor": f"why-{reason['signal']}",
        "sentence": sentence,
        "effect": effect_words(contribution),
        "strength": grade,
        "direction": "barely" if grade == "barely" else direction,
        "record_ids": ids,
        "records_omitted": int(reason.get("records_omitted", 0)),
    }


def page_reasons(
    reasons: Sequence[Mapping[str, Any]],
    timeline: Sequence[Mapping[str, Any]],
    panel: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """Every reason of the score for the page, most influential first, ranked from 1."""
    dates = record_dates(timeline, panel)
    return [page_reason(r, rank=i, dates=dates) for i, r in enumerate(reasons, start=1)]
