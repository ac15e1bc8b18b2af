"""The referral page's reasons and chronology: worded reasons, the chart, the filtered rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from explain.plots import reasons_words_svg
from service.chronology import ROWS_SHOWN, RUN_LISTED, Entry, chronology
from service.reason_words import page_reasons, sentence_of

CHART_REASONS = 8
"""The reasons drawn as bars (the rest are listed below the chart)."""


def _bar_words(reason: Mapping[str, Any]) -> str:
    if reason["direction"] == "barely":
        return "barely"
    return f"{reason['direction']}, {reason['strength']}"


def reasons_and_chronology(
    detail: Mapping[str, Any],
    *,
    query: Mapping[str, Any],
    names: Mapping[str, str],
) -> dict[str, Any]:
    """The template context for the reasons and history sections (``query``: the filter)."""
    referral_id = detail["referral"]["referral_id"]
    stored = detail["score"].get("reasons", [])
    reasons = page_reasons(stored, detail["timeline"], detail["household"])
    getlist = getattr(query, "getlist", None)
    agencies = getlist("agency") if getlist else list(query.get("agency", ()))
    view = query.get("view") or "all"
    all_rows = query.get("rows") == "all"
    chosen = chronology(
        detail["timeline"],
        agencies=agencies,
        view=view,
        names=names,
        limit=None if all_rows else ROWS_SHOWN,
        run_listed=RUN_LISTED,
    )
    # A record not on this page is on the page with every row and no filter.
    elsewhere = f"/referrals/{referral_id}?rows=all#"
    records_for: dict[str, list[tuple[Entry, str]]] = {}
    for entry in chosen.every:
        anchor = entry.anchor
        href = f"#{anchor}" if anchor in chosen.anchors else f"{elsewhere}{anchor}"
        for signal in entry.signals:
            records_for.setdefault(signal, []).append((entry, href))
    chart = None
    if reasons:
        shown = list(zip(stored[:CHART_REASONS], reasons[:CHART_REASONS], strict=True))
        chart = reasons_words_svg(
            [sentence_of(s) for s, _ in shown],
            [float(s["contribution"]) for s, _ in shown],
            [_bar_words(r) for _, r in shown],
        )
    return {
        "page_reasons": reasons,
        "reason_of": {r["signal"]: r for r in reasons},
        "chart": chart,
        "chronology": chosen,
        "record_links": records_for,
        "filtered": bool(chosen.chosen) or chosen.view != "all",
        "all_rows": all_rows,
        # "Show all": the same filter, every row.
        "all_rows_query": urlencode(
            [*(("agency", a) for a in chosen.chosen), ("view", chosen.view), ("rows", "all")]
        ),
    }
