"""The self-contained HTML report of an audit document, rendered from a Jinja2 template.

Python chooses and arranges what the report shows (rows, figure geometry, inline PNGs); the
template ``templates/report.html.j2`` holds all the markup and escapes every value.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from models.fairness._config import DISPARITY, INSUFFICIENT, WITHIN
from models.fairness._words import KEY_METRICS, percent

_VERDICT_CLASS = {WITHIN: "ok", DISPARITY: "bad", INSUFFICIENT: "unsure"}
_ENVIRONMENT = Environment(
    loader=PackageLoader("models.fairness", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
)
_ENVIRONMENT.filters.update(percent=percent, whole_percent=lambda x: round(100 * x))
_ENVIRONMENT.globals.update(
    WITHIN=WITHIN, DISPARITY=DISPARITY, INSUFFICIENT=INSUFFICIENT, verdict_class=_VERDICT_CLASS
)


_QUARTER_COLUMNS = ("base_rate", "mean_score", "calibration_gap", "auc", "fnr_at_10", "fpr_at_10")


def _quarter_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The whole set by quarter, first label: each figure and its bootstrap interval."""
    labels = document["meta"].get("labels") or ["observed"]
    wide: dict[str, dict[str, Any]] = {}
    for row in document.get("by_quarter") or []:
        if row["grouping"] != "overall" or row["metric"] not in _QUARTER_COLUMNS:
            continue
        if row["label"] != labels[0]:
            continue
        out = wide.setdefault(row["quarter"], {"quarter": row["quarter"]})
        out[row["metric"]] = row.get("estimate")
        lower, upper = row.get("lower"), row.get("upper")
        out[f"{row['metric']}_interval"] = (
            None if lower is None or upper is None else f"{lower:.3f} to {upper:.3f}"
        )
    return [wide[q] for q in sorted(wide)]


def _interval_figure(rows: list[dict[str, Any]], title: str, reference: str) -> dict[str, Any]:
    """Geometry of a dot-and-whisker plot of one rate by group, with its Wilson interval."""
    width, left, row_h = 640, 230, 22
    height = 40 + row_h * len(rows)
    highs = [r.get("wilson_upper") or r.get("upper") or r["estimate"] or 0 for r in rows]
    top = max([*highs, 0.01]) * 1.1
    scale = (width - left - 30) / top
    marks = []
    for i, row in enumerate(rows):
        est = row.get("estimate")
        lo = row.get("wilson_lower", row.get("lower"))
        hi = row.get("wilson_upper", row.get("upper"))
        x_lower = x_upper = None
        if lo is not None and hi is not None:
            x_lower, x_upper = left + lo * scale, left + hi * scale
        marks.append(
            {
                "y": 32 + i * row_h,
                "group": row["group"],
                "estimate": est,
                "colour": "#b3261e" if row["group"] == reference else "#1f5f99",
                "x_lower": x_lower,
                "x_upper": x_upper,
                "x_estimate": None if est is None else left + est * scale,
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "title": title,
        "top": top,
        "marks": marks,
    }


def _share_figure(rows: list[dict[str, Any]], capacity: int) -> dict[str, Any]:
    """Geometry of paired bars: share of referrals against share of the top k of the queue."""
    width, left, row_h = 640, 230, 26
    height = 40 + row_h * len(rows)
    top = max(
        [r["share_of_referrals"] or 0 for r in rows]
        + [r[f"share_of_top_{capacity}"] or 0 for r in rows]
        + [0.01]
    )
    scale = (width - left - 60) / top
    bars = []
    for i, row in enumerate(rows):
        share, topk = row["share_of_referrals"] or 0, row[f"share_of_top_{capacity}"] or 0
        bars.append(
            {
                "y": 26 + i * row_h,
                "group": row["group"],
                "share": share,
                "top": topk,
                "share_width": share * scale,
                "top_width": topk * scale,
                "label_x": left + max(share, topk) * scale + 4,
            }
        )
    return {"width": width, "height": height, "left": left, "capacity": capacity, "bars": bars}


def _png_data_uri(fig: Any) -> str:
    """A matplotlib figure as an inline PNG data URI (the report fetches nothing)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _reliability_png(rows: list[dict[str, Any]], grouping: str) -> str:
    """Reliability curves of every group of one attribute, as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    for column in ("mean_predicted", "observed_rate"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    for group, part in frame.groupby("group"):
        ax.plot(part["mean_predicted"], part["observed_rate"], marker="o", ms=3, label=group)
    ax.set(xlabel="mean score", ylabel="observed rate", title=f"Calibration by {grouping}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png_data_uri(fig)


def _by(rows: list[dict[str, Any]] | None, **where: Any) -> list[dict[str, Any]]:
    return [r for r in rows or [] if all(r.get(k) == v for k, v in where.items())]


def _attribute_section(document: Mapping[str, Any], attribute: str) -> dict[str, Any]:
    """One attribute's table of headline metrics, its figures and its ranking view."""
    metrics, comparisons = document["metrics"], document["comparisons"]
    ref = document["references"][attribute]["group"]
    rows = []
    for group in [r["group"] for r in _by(document["groups"], grouping=attribute)]:
        row: dict[str, Any] = {"group": group}
        for m in _by(metrics, grouping=attribute, group=group, label="observed"):
            row[m["metric"]] = m["estimate"]
        for c in _by(comparisons, grouping=attribute, group=group, label="observed"):
            if c["metric"] in ("selection_rate_at_10", "fnr_at_10", "calibration_gap"):
                row[f"verdict_{c['metric']}"] = c["verdict"]
        row["n"] = next(
            (g.get("n") for g in _by(document["groups"], grouping=attribute, group=group)),
            None,
        )
        rows.append(row)
    selected = _by(metrics, grouping=attribute, label="observed", metric="selection_rate_at_10")
    curves = [
        r
        for r in _by(document.get("reliability"), grouping=attribute, label="observed")
        if r.get("observed_rate") is not None
    ]
    ranking = _by(document["ranking"], grouping=attribute)
    return {
        "attribute": attribute,
        "rows": rows,
        "selected": _interval_figure(
            selected, f"Share selected in the top 10% (reference {ref})", ref
        ),
        "reliability": _reliability_png(curves, attribute) if curves else None,
        "ranking": ranking,
        "shares": _share_figure(ranking, 10) if ranking else None,
    }


def _human_rows(document: Mapping[str, Any], singles: list[str]) -> list[dict[str, Any]]:
    """Human-decision rates of single attributes, each with its comparison's verdict."""
    hc = document.get("human_comparisons") or []
    rows = []
    for h in document.get("human") or []:
        if h["grouping"] not in singles:
            continue
        verdict = next(
            (
                c["verdict"]
                for c in hc
                if c["grouping"] == h["grouping"]
                and c["group"] == h["group"]
                and c["metric"] == h["metric"]
            ),
            "reference",
        )
        rows.append({**h, "verdict": verdict})
    return rows


def render_html(
    document: Mapping[str, Any], gaps: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """A self-contained HTML report of a document: plots inline, plain-language summaries."""
    config = document["config"]
    present = {r["grouping"] for r in document["groups"]}
    singles = [s for s in config["attributes"] if s in present]
    flagged = [
        c
        for c in document["comparisons"]
        if c["label"] == "observed"
        and c["grouping"] not in singles
        and c["metric"] in KEY_METRICS
        and c["verdict"] != WITHIN
    ]
    flagged.sort(key=lambda c: (c["verdict"] != DISPARITY, -abs(c.get("difference") or 0)))
    label_gap = [
        r
        for r in document.get("label_gap") or []
        if r["grouping"] in singles and r["metric"] in ("base_rate", "fnr_at_10", "precision_at_10")
    ]
    template = _ENVIRONMENT.get_template("report.html.j2")
    return template.render(
        document=document,
        meta=document["meta"],
        config=config,
        verdict_rows=[{"label": k, **v} for k, v in document["summary"]["verdicts"].items()],
        reference_rows=[{"grouping": k, **v} for k, v in document["references"].items()],
        sections=[_attribute_section(document, attribute) for attribute in singles],
        flagged=flagged,
        label_gap=label_gap if document.get("label_gap") else None,
        human=_human_rows(document, singles) if document.get("human") else None,
        gaps=gaps if gaps is not None else document.get("why_gaps") or [],
        disclosure=document.get("disclosure"),
        measures=[
            r
            for r in document.get("summary_measures") or []
            if r["capacity"] == 10 and r["grouping"] in singles and r["label"] in (None, "observed")
        ],
        versus=[r for r in document.get("human_vs_model") or [] if r["grouping"] in singles],
        human_capacity=config.get("human_capacity"),
        changes=[
            r
            for r in document.get("quarter_change") or []
            if r.get("changed") and r["label"] == "observed"
        ],
        tested_changes=len(document.get("quarter_change") or []),
        quarters=_quarter_rows(document),
    )
