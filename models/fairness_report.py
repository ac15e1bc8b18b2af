"""Fairness audit outputs: a versioned JSON document, a self-contained HTML report, MLflow."""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.dataset import TrainingData
from models.fairness import (
    DISPARITY,
    ECE_MIN_SIZE,
    ESCALATING,
    HIGH_BANDS,
    HUMAN_TOLERANCE,
    INSUFFICIENT,
    SEPARATOR,
    TOLERANCE_VERSION,
    WITHIN,
    AuditConfig,
    FairnessAudit,
    audit,
    audit_attributes,
)
from models.scorer import Scorer

SCHEMA = "triage/fairness-audit"
SCHEMA_VERSION = "1.0.0"
"""Bumped on any change to the document's fields: major for removals, minor for additions."""
DEFAULT_MIN_COUNT = 10
KEY_METRICS = (
    "selection_rate_at_10",
    "precision_at_10",
    "fnr_at_10",
    "fpr_at_10",
    "auc",
    "calibration_gap",
    "ece",
)
_LABELS = {
    "base_rate": "observed rate",
    "mean_score": "mean score",
    "calibration_gap": "mean score − observed rate",
    "auc": "AUC",
    "brier": "Brier score",
    "ece": "ECE",
    "calibration_slope": "calibration slope",
    "calibration_intercept": "calibration intercept",
    "selection_rate": "share selected",
    "precision": "precision",
    "fpr": "false-positive rate",
    "fnr": "false-negative rate",
    "fdr": "false-discovery rate",
    "for": "false-omission rate",
}
_ROW_TABLES = ("metrics", "comparisons", "reliability", "ranking", "human", "human_comparisons")
_COUNT_FIELDS = ("n", "numerator", "denominator")

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"{SCHEMA}/{SCHEMA_VERSION}",
    "type": "object",
    "required": [
        "schema",
        "schema_version",
        "generated_at",
        "meta",
        "config",
        "thresholds",
        "references",
        "groups",
        "suppressed",
        "metrics",
        "comparisons",
        "ranking",
        "summary",
    ],
    "properties": {
        "schema": {"const": SCHEMA},
        "schema_version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "generated_at": {"type": "string"},
        "meta": {"type": "object"},
        "config": {"type": "object", "required": ["tolerances", "tolerance_version"]},
        "thresholds": {"type": "object"},
        "references": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["group", "rule", "version"],
            },
        },
        "groups": {"type": "array", "items": {"type": "object", "required": ["grouping", "group"]}},
        "suppressed": {
            "type": "array",
            "items": {"type": "object", "required": ["grouping", "group", "reason"]},
        },
        "metrics": {"type": "array", "items": {"type": "object", "required": ["metric", "label"]}},
        "comparisons": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["grouping", "group", "reference", "metric", "verdict"],
                "properties": {"verdict": {"enum": [WITHIN, DISPARITY, INSUFFICIENT]}},
            },
        },
        "ranking": {"type": "array"},
        "human": {"type": ["array", "null"]},
        "why_gaps": {"type": "array"},
        "summary": {"type": "object", "required": ["sentences", "verdicts"]},
    },
}
"""JSON Schema of the document; `schema_version` says which version a document follows."""


def records(frame: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """Rows as JSON-ready dicts: NaN and infinities become null, numpy scalars plain."""
    if frame is None:
        return None
    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[key] = value
        out.append(clean)
    return out


def _percent(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _points(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f} points"


def metric_words(metric: str) -> str:
    """A metric's name in words, e.g. 'share selected in the top 10%'."""
    base, _, capacity = metric.partition("_at_")
    words = _LABELS.get(base, base.replace("_", " "))
    return f"{words} in the top {capacity}% queue" if capacity else words


def _sentence(row: Mapping[str, Any]) -> str:
    """One comparison in plain language."""
    metric = row["metric"]
    rate_like = not metric.startswith(("auc", "calibration_slope", "calibration_intercept"))
    fmt = _percent if rate_like else (lambda v: "n/a" if v is None else f"{v:.3f}")
    diff = row.get("difference")
    diff_text = _points(diff) if rate_like else ("n/a" if diff is None else f"{diff:+.3f}")
    label = "" if row.get("label", "observed") == "observed" else " (against the latent truth)"
    verdict = row["verdict"]
    tail = {
        DISPARITY: "a disparity beyond the tolerance, after correcting for multiple comparisons",
        WITHIN: "within the tolerance",
        INSUFFICIENT: "not enough evidence either way",
    }[verdict]
    return (
        f"{row['group']} ({row['grouping']}): {metric_words(metric)}{label} is "
        f"{fmt(row.get('estimate'))} against {fmt(row.get('reference_estimate'))} for "
        f"{row['reference']}, a difference of {diff_text}: {tail}."
    )


def summary_sentences(comparisons: pd.DataFrame, *, limit: int = 12) -> list[str]:
    """Plain language: per grouping, how many groups differ; then the largest headline gaps.

    Headline metrics come first (share selected, precision, FNR and FPR at 10%, AUC,
    calibration gap, ECE), and each group is named once, by its largest disparity.
    """
    found = comparisons[comparisons["verdict"] == DISPARITY]
    if found.empty:
        return ["No comparison shows a disparity beyond its tolerance."]
    sentences = []
    for grouping, part in comparisons.groupby("grouping", sort=False):
        bad = part[part["verdict"] == DISPARITY]
        if not bad.empty and SEPARATOR not in grouping:
            names = ", ".join(sorted(bad["group"].unique()))
            sentences.append(
                f"By {grouping.replace('_', ' ')}: {bad['group'].nunique()} of "
                f"{part['group'].nunique()} groups show at least one disparity against "
                f"{part['reference'].iloc[0]} ({names}), in {len(bad)} of {len(part)} comparisons."
            )
    headline = found["metric"].isin(KEY_METRICS)
    ranked = found.assign(
        _headline=~headline.to_numpy(), _size=-found["difference"].abs().to_numpy()
    ).sort_values(["_headline", "_size"])
    ranked = ranked.drop_duplicates(["grouping", "group"]).drop(columns=["_headline", "_size"])
    sentences += [_sentence(row) for row in records(ranked.head(limit)) or []]
    sentences.append(
        f"In all, {len(found)} of {len(comparisons)} comparisons show a disparity; the tables "
        "below and the JSON have every one."
    )
    return sentences


def _label_sentence(result: FairnessAudit) -> str | None:
    """Where the observed label understates the latent harm most, in words."""
    gap = label_gap(result)
    if gap is None:
        return None
    rates = gap[(gap["metric"] == "base_rate") & ~gap["grouping"].str.contains(SEPARATOR)]
    rates = rates.dropna(subset=["gap"])
    if rates.empty:
        return None
    worst, best = rates.loc[rates["gap"].idxmin()], rates.loc[rates["gap"].idxmax()]
    return (
        "Against the latent truth, the observed outcome understates harm most for "
        f"{worst['group']} ({worst['grouping']}: observed {_percent(worst['observed'])}, "
        f"true {_percent(worst['truth'])}) and least for {best['group']} ({best['grouping']}: "
        f"{_percent(best['observed'])} against {_percent(best['truth'])}); where this gap differs "
        "between groups the label itself is biased."
    )


def _human_sentence(result: FairnessAudit) -> str | None:
    """The spread of agreement between practitioners and the model's band, in words."""
    if result.human is None:
        return None
    rows = result.human[
        (result.human["metric"] == "agreement_with_band")
        & ~result.human["grouping"].str.contains(SEPARATOR)
    ].dropna(subset=["estimate"])
    if rows.empty:
        return None
    low, high = rows.loc[rows["estimate"].idxmin()], rows.loc[rows["estimate"].idxmax()]
    found = result.human_comparisons
    count = int((found["verdict"] == DISPARITY).sum()) if found is not None else 0
    return (
        "Practitioners' decisions agree with the model's band least for "
        f"{low['group']} ({low['grouping']}, {_percent(low['estimate'])}) and most for "
        f"{high['group']} ({high['grouping']}, {_percent(high['estimate'])}); {count} "
        "human-decision comparisons show a disparity."
    )


def _suppress_small(rows: list[dict[str, Any]], min_count: int) -> list[dict[str, Any]]:
    """Null counts below min_count, and the rates and intervals that would reveal them."""
    out = []
    for row in rows:
        small = any(
            isinstance(row.get(k), int | float) and 0 < row[k] < min_count for k in _COUNT_FIELDS
        )
        if small:
            row = {
                k: (None if isinstance(v, int | float) and not isinstance(v, bool) else v)
                for k, v in row.items()
            }
            row["small_count_suppressed"] = True
        out.append(row)
    return out


def to_document(
    result: FairnessAudit,
    *,
    meta: Mapping[str, Any] | None = None,
    gaps: Sequence[Mapping[str, Any]] = (),
    pseudonymise: bool = False,
    min_count: int | None = None,
) -> dict[str, Any]:
    """The audit as a JSON-ready document following ``JSON_SCHEMA`` (version ``SCHEMA_VERSION``).

    ``pseudonymise`` drops identifying metadata (paths, run and data identifiers) and turns on
    small-count suppression (``min_count``, default 10): a row with any count from 1 to
    ``min_count - 1`` keeps its labels but loses every number. This is what a researcher route
    serves.
    """
    config = result.config
    meta = dict(meta or {})
    if pseudonymise:
        for key in ("source", "run_id", "data_fingerprint"):
            meta.pop(key, None)
        min_count = DEFAULT_MIN_COUNT if min_count is None else min_count
    config_doc = {
        "capacities": list(config.capacities),
        "attributes": list(config.attributes),
        "intersections": [list(t) for t in config.intersections],
        "min_size": config.min_size,
        "n_boot": config.n_boot,
        "level": config.level,
        "alpha": config.alpha,
        "correction": config.correction,
        "correction_family": "one family per label and metric, across all groups",
        "tolerances": dict(config.tolerances),
        "tolerance_version": TOLERANCE_VERSION,
        "human_tolerance": HUMAN_TOLERANCE,
        "ece_min_size": ECE_MIN_SIZE,
        "reference_version": config.references.version,
        "bootstrap": (
            "stratified within each group: multinomial over score cells × labels"
            if config.bootstrap == "stratified"
            else "household: Poisson(1) weight per household over score cells × labels"
        ),
        "n_cells": config.n_cells,
        "seed": config.seed,
        "min_count": min_count,
        "escalating_decisions": list(ESCALATING),
        "high_bands": list(HIGH_BANDS),
    }
    tables: dict[str, list[dict[str, Any]] | None] = {
        name: records(getattr(result, name)) for name in _ROW_TABLES
    }
    groups = result.groups[~result.groups["suppressed"]].drop(columns="suppressed")
    suppressed = result.suppressed.copy()
    tables["groups"] = records(groups)
    if min_count:
        suppressed = suppressed.drop(columns="n")
        for name in ("metrics", "human", "groups", "comparisons", "human_comparisons"):
            if tables[name] is not None:
                tables[name] = _suppress_small(tables[name], min_count)
    comparisons = result.comparisons
    verdict_counts = {
        label: comparisons[comparisons["label"] == label]["verdict"].value_counts().to_dict()
        for label in result.labels
    }
    sentences = summary_sentences(comparisons[comparisons["label"] == "observed"])
    sentences += [s for s in (_label_sentence(result), _human_sentence(result)) if s]
    if len(result.suppressed):
        sentences.append(
            f"{len(result.suppressed)} groups have fewer than {config.min_size} referrals: they "
            "are listed as suppressed and not shown or tested."
        )
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "meta": {"n": result.n, "labels": list(result.labels), **meta},
        "config": config_doc,
        "thresholds": {str(k): v for k, v in result.thresholds.items()},
        "references": result.references,
        "suppressed": records(suppressed),
        "label_gap": records(label_gap(result)),
        # Images stay in the HTML; the document keeps the numbers.
        "why_gaps": [{k: v for k, v in g.items() if k != "image"} for g in gaps],
        "summary": {"verdicts": verdict_counts, "sentences": sentences},
        **tables,
    }
    if min_count:
        document["label_gap"] = _suppress_small(document["label_gap"] or [], min_count) or None
    return document


_IDENTIFYING_META = ("source", "run_id", "data_fingerprint")
_SUPPRESSIBLE = ("metrics", "human", "groups", "comparisons", "human_comparisons", "label_gap")


def pseudonymise_document(
    document: Mapping[str, Any], *, min_count: int = DEFAULT_MIN_COUNT
) -> dict[str, Any]:
    """A stored audit document as a researcher may see it: no identifiers, small counts hidden.

    Does to a finished document what ``to_document(pseudonymise=True)`` does while building
    one (the API serves the document logged with the champion's training run).
    """
    out = json.loads(json.dumps(document))  # a deep copy; the stored document stays as it was
    out["meta"] = {k: v for k, v in out.get("meta", {}).items() if k not in _IDENTIFYING_META}
    out["config"]["min_count"] = min_count
    out["suppressed"] = [
        {k: v for k, v in row.items() if k != "n"} for row in out.get("suppressed") or []
    ]
    for name in _SUPPRESSIBLE:
        if out.get(name):
            out[name] = _suppress_small(out[name], min_count)
    return out


def label_gap(result: FairnessAudit) -> pd.DataFrame | None:
    """Per group, each metric against the observed label and the latent truth, and the gap."""
    if "truth" not in result.labels:
        return None
    keys = ["grouping", "group", "metric", "label"]
    wide = result.metrics.set_index(keys)["estimate"].unstack("label").reset_index()
    wide.columns.name = None
    wide["gap"] = wide["observed"] - wide["truth"]
    return wide


def validate_document(document: Mapping[str, Any]) -> None:
    """Raise if the document does not follow ``JSON_SCHEMA``."""
    import jsonschema

    jsonschema.validate(document, JSON_SCHEMA)


# --- HTML ------------------------------------------------------------------------------------

_VERDICT_CLASS = {WITHIN: "ok", DISPARITY: "bad", INSUFFICIENT: "unsure"}
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:right}
th:first-child,td:first-child,td.l{text-align:left}
.ok{background:#e6f4ea}.bad{background:#fde7e9;font-weight:600}.unsure{background:#fff6db}
.note{color:#555;font-size:.9rem}figure{margin:.8rem 0}
"""


def _svg_intervals(rows: list[dict[str, Any]], title: str, reference: str) -> str:
    """Dot-and-whisker plot of one rate by group, with its Wilson interval."""
    width, left, row_h = 640, 230, 22
    height = 40 + row_h * len(rows)
    highs = [r.get("wilson_upper") or r.get("upper") or r["estimate"] or 0 for r in rows]
    top = max([*highs, 0.01]) * 1.1
    scale = (width - left - 30) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="{left}" y="14" font-size="12">{escape(title)}</text>',
    ]
    for i, row in enumerate(rows):
        y = 32 + i * row_h
        est = row.get("estimate")
        lo = row.get("wilson_lower", row.get("lower"))
        hi = row.get("wilson_upper", row.get("upper"))
        colour = "#b3261e" if row["group"] == reference else "#1f5f99"
        parts.append(
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" font-size="12">'
            f"{escape(row['group'])}</text>"
        )
        if lo is not None and hi is not None:
            parts.append(
                f'<line x1="{left + lo * scale:.1f}" y1="{y}" x2="{left + hi * scale:.1f}"'
                f' y2="{y}" stroke="{colour}" stroke-width="2"/>'
            )
        if est is not None:
            parts.append(
                f'<circle cx="{left + est * scale:.1f}" cy="{y}" r="4" fill="{colour}">'
                f"<title>{escape(row['group'])}: {_percent(est)}</title></circle>"
            )
    parts.append(
        f'<line x1="{left}" y1="22" x2="{left}" y2="{height - 6}" stroke="#999"/>'
        f'<text x="{width - 30}" y="{height - 4}" font-size="10" text-anchor="end">'
        f"0 – {_percent(top)}</text></svg>"
    )
    return "".join(parts)


def _svg_shares(rows: list[dict[str, Any]], capacity: int) -> str:
    """Paired bars: share of referrals against share of the top k of the queue."""
    width, left, row_h = 640, 230, 26
    height = 40 + row_h * len(rows)
    top = max(
        [r["share_of_referrals"] for r in rows]
        + [r[f"share_of_top_{capacity}"] or 0 for r in rows]
        + [0.01]
    )
    scale = (width - left - 60) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}"><title>Share of the top {capacity}% against share of'
        " referrals</title>",
        f'<text x="{left}" y="14" font-size="12">grey: share of referrals; blue: share of the'
        f" top {capacity}%</text>",
    ]
    for i, row in enumerate(rows):
        y = 26 + i * row_h
        share, topk = row["share_of_referrals"], row[f"share_of_top_{capacity}"] or 0
        parts += [
            f'<text x="{left - 8}" y="{y + 12}" text-anchor="end" font-size="12">'
            f"{escape(row['group'])}</text>",
            f'<rect x="{left}" y="{y}" width="{share * scale:.1f}" height="9" fill="#999"/>',
            f'<rect x="{left}" y="{y + 10}" width="{topk * scale:.1f}" height="9" fill="#1f5f99"/>',
            f'<text x="{left + max(share, topk) * scale + 4:.1f}" y="{y + 15}" font-size="10">'
            f"{_percent(share)} / {_percent(topk)}</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


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
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    for group, part in frame.groupby("group"):
        ax.plot(part["mean_predicted"], part["observed_rate"], marker="o", ms=3, label=group)
    ax.set(xlabel="mean score", ylabel="observed rate", title=f"Calibration by {grouping}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png_data_uri(fig)


def _table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """An HTML table; verdict cells are coloured, rates shown as percentages."""
    head = "".join(f"<th>{escape(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if key in ("verdict",) or key.startswith("verdict_"):
                cls = _VERDICT_CLASS.get(value, "")
                cells.append(f'<td class="l {cls}">{escape(str(value or ""))}</td>')
            elif isinstance(value, float):
                cells.append(f"<td>{value:.3f}</td>")
            elif value is None:
                cells.append("<td>–</td>")
            else:
                cells.append(f'<td class="l">{escape(str(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _by(rows: list[dict[str, Any]] | None, **where: Any) -> list[dict[str, Any]]:
    return [r for r in rows or [] if all(r.get(k) == v for k, v in where.items())]


def render_html(
    document: Mapping[str, Any], gaps: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """A self-contained HTML report of a document: plots inline, plain-language summaries."""
    meta, config = document["meta"], document["config"]
    singles = list(config["attributes"])
    present = {r["grouping"] for r in document["groups"]}
    singles = [s for s in singles if s in present]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Fairness audit</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Fairness audit of the referral queue</h1>",
        f"<p>{meta.get('n', 0):,} scored referrals"
        + (f"; outcome: {escape(str(meta['outcome_words']))}" if meta.get("outcome_words") else "")
        + (f"; model {escape(str(meta['model_version']))}" if meta.get("model_version") else "")
        + (f"; period: {escape(str(meta['period']))}" if meta.get("period") else "")
        + ". Synthetic data only.</p>",
        f"<p class='note'>Schema {escape(document['schema'])} {document['schema_version']};"
        f" generated {escape(document['generated_at'])}. Queue capacities are the top"
        f" {', '.join(str(round(100 * c)) for c in config['capacities'])}% of all scored"
        " referrals by score.</p>",
        "<h2>Summary</h2><ul>",
        *(f"<li>{escape(s)}</li>" for s in document["summary"]["sentences"]),
        "</ul>",
        _table(
            [{"label": k, **v} for k, v in document["summary"]["verdicts"].items()],
            [
                ("label", "label"),
                (WITHIN, WITHIN),
                (DISPARITY, DISPARITY),
                (INSUFFICIENT, INSUFFICIENT),
            ],
        ),
        "<p class='note'>Verdicts compare each group with its reference group. <b>Disparity</b>:"
        f" the {escape(config['correction'])}-corrected test rejects equality at"
        f" α = {config['alpha']} and the difference is beyond the tolerance. <b>Within"
        f" tolerance</b>: the whole {round(100 * config['level'])}% interval of the difference"
        " lies inside ±tolerance. Otherwise, <b>insufficient evidence</b>. Tolerances"
        f" ({escape(config['tolerance_version'])}): "
        + ", ".join(f"{escape(k)} {v}" for k, v in config["tolerances"].items())
        + ".</p>",
        "<h2>Reference groups</h2>",
        _table(
            [{"grouping": k, **v} for k, v in document["references"].items()],
            [
                ("grouping", "grouping"),
                ("group", "reference"),
                ("rule", "rule"),
                ("version", "version"),
            ],
        ),
    ]
    metrics, comparisons = document["metrics"], document["comparisons"]
    for attribute in singles:
        ref = document["references"][attribute]["group"]
        out.append(f"<h2>By {escape(attribute.replace('_', ' '))}</h2>")
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
        out.append(
            _table(
                rows,
                [
                    ("group", "group"),
                    ("n", "referrals"),
                    ("base_rate", "observed rate"),
                    ("mean_score", "mean score"),
                    ("selection_rate_at_10", "selected (top 10%)"),
                    ("verdict_selection_rate_at_10", "verdict"),
                    ("precision_at_10", "precision"),
                    ("fnr_at_10", "FNR"),
                    ("verdict_fnr_at_10", "verdict"),
                    ("fpr_at_10", "FPR"),
                    ("auc", "AUC"),
                    ("ece", "ECE"),
                    ("calibration_gap", "score − rate"),
                    ("verdict_calibration_gap", "verdict"),
                ],
            )
        )
        selected = _by(metrics, grouping=attribute, label="observed", metric="selection_rate_at_10")
        out.append(
            "<figure>"
            + _svg_intervals(selected, f"Share selected in the top 10% (reference {ref})", ref)
            + "</figure>"
        )
        curves = _by(document.get("reliability"), grouping=attribute, label="observed")
        if curves:
            out.append(
                f"<figure><img alt='calibration by {escape(attribute)}'"
                f" src='{_reliability_png(curves, attribute)}'></figure>"
            )
        ranking = _by(document["ranking"], grouping=attribute)
        if ranking:
            out.append("<h3>Ranking view</h3><figure>" + _svg_shares(ranking, 10) + "</figure>")
            out.append(
                _table(
                    ranking,
                    [
                        ("group", "group"),
                        ("share_of_referrals", "share of referrals"),
                        ("share_of_positives", "share of outcomes"),
                        ("share_of_top_10", "share of top 10%"),
                        ("top_10_ratio", "ratio"),
                        ("exposure_share", "exposure share"),
                        ("exposure_ratio", "exposure ratio"),
                    ],
                )
            )
    out.append("<h2>Intersections: comparisons that are not within tolerance</h2>")
    flagged = [
        c
        for c in comparisons
        if c["label"] == "observed"
        and c["grouping"] not in singles
        and c["metric"] in KEY_METRICS
        and c["verdict"] != WITHIN
    ]
    flagged.sort(key=lambda c: (c["verdict"] != DISPARITY, -abs(c.get("difference") or 0)))
    out.append(
        _table(
            flagged[:60],
            [
                ("grouping", "grouping"),
                ("group", "group"),
                ("metric", "metric"),
                ("estimate", "value"),
                ("reference_estimate", "reference"),
                ("difference", "difference"),
                ("difference_lower", "low"),
                ("difference_upper", "high"),
                ("p_adjusted", "adjusted p"),
                ("verdict", "verdict"),
            ],
        )
        + f"<p class='note'>{len(flagged)} such comparisons on the key metrics; all are in"
        " the JSON.</p>"
    )
    gap = document.get("label_gap")
    if gap:
        out.append(
            "<h2>Observed label against the latent truth</h2><p>The observed outcome exists"
            " only where a family was investigated. In this synthetic world the latent harm is"
            " known, so the same metrics can be computed against it: where the gap differs"
            " between groups, the label itself is biased.</p>"
        )
        rows = [
            r
            for r in gap
            if r["grouping"] in singles
            and r["metric"] in ("base_rate", "fnr_at_10", "precision_at_10")
        ]
        out.append(
            _table(
                rows,
                [
                    ("grouping", "grouping"),
                    ("group", "group"),
                    ("metric", "metric"),
                    ("observed", "observed"),
                    ("truth", "truth"),
                    ("gap", "gap"),
                ],
            )
        )
    human = document.get("human")
    if human:
        out.append(
            "<h2>Human decisions</h2><p>Escalated: the front-door decision took the referral"
            f" further ({', '.join(config['escalating_decisions'])}). Agreement with the band:"
            f" escalated when the model's band is {' or '.join(config['high_bands'])}, not"
            " escalated otherwise. Intervals are Wilson; differences Newcombe.</p>"
        )
        hc = document.get("human_comparisons") or []
        rows = []
        for h in human:
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
        out.append(
            _table(
                rows,
                [
                    ("grouping", "grouping"),
                    ("group", "group"),
                    ("metric", "metric"),
                    ("estimate", "rate"),
                    ("wilson_lower", "low"),
                    ("wilson_upper", "high"),
                    ("denominator", "of"),
                    ("verdict", "verdict"),
                ],
            )
        )
    for gap_doc in gaps if gaps is not None else document.get("why_gaps") or []:
        out.append(
            f"<h2>Why scores differ: {escape(gap_doc['group_a'])} and"
            f" {escape(gap_doc['group_b'])} ({escape(gap_doc['grouping'])})</h2>"
            f"<p>{escape(gap_doc['sentence'])}</p>"
        )
        if gap_doc.get("image"):
            out.append(
                f"<figure><img alt='signal contributions' src='{gap_doc['image']}'></figure>"
            )
    out.append("<h2>Suppressed groups</h2>")
    if document["suppressed"]:
        out.append(
            f"<p>Fewer than {config['min_size']} referrals: not shown, not tested.</p>"
            + _table(
                document["suppressed"],
                [("grouping", "grouping"), ("group", "group"), ("reason", "reason")],
            )
        )
    else:
        out.append("<p>None.</p>")
    out.append(
        "<h2>Method</h2><p class='note'>Each capacity selects the top k% of all scored"
        " referrals by score (ties at the cut all selected). Intervals: bootstrap within each"
        f" group ({config['n_boot']} replicates, {escape(config['bootstrap'])}) and Wilson for"
        " rates. Rate differences use Newcombe intervals and a pooled two-proportion test (Fisher's"
        " exact test where an expected count is below 5); other"
        " metrics a bootstrap z-test. ECE is judged only for groups of at least"
        f" {config['ece_min_size']}.</p></body></html>"
    )
    return "".join(out)


# --- Building an audit from a model and an extract -------------------------------------------


def load_decisions(
    directory: Path, referral_ids: pd.Index, bands: np.ndarray | None = None
) -> pd.DataFrame | None:
    """Front-door decisions and investigations of the given referrals, with the model's band."""
    path = directory / "decisions.parquet"
    if not path.exists():
        return None
    decisions = pd.read_parquet(path).drop_duplicates("referral_id", keep="last")
    frame = decisions.set_index("referral_id").reindex(referral_ids)
    columns = ["decision", *(["agreement"] if "agreement" in frame else [])]
    out = frame[columns].copy()
    outcomes_path = directory / "outcomes.parquet"
    if outcomes_path.exists():
        outcomes = pd.read_parquet(outcomes_path, columns=["referral_id", "investigated_12m"])
        outcomes = outcomes.set_index("referral_id")["investigated_12m"]
        out["investigated"] = outcomes.reindex(referral_ids).fillna(False).astype(bool)
    if bands is not None:
        out["band"] = bands
    return out


def audit_scored(
    data: TrainingData,
    ids: pd.Index,
    probability: np.ndarray,
    *,
    scorer: Scorer | None = None,
    directory: Path | None = None,
    config: AuditConfig | None = None,
) -> FairnessAudit:
    """Audit scored referrals of a training table (observed label, truth if any, decisions)."""
    attributes = audit_attributes(data.protected.loc[ids])
    y = data.label.loc[ids].to_numpy(dtype=float)
    truth = None if data.truth is None else data.truth.loc[ids].to_numpy(dtype=float)
    bands = None if scorer is None else scorer.bands.assign(probability)
    decisions = None if directory is None else load_decisions(directory, ids, bands)
    return audit(
        y,
        probability,
        attributes,
        truth=truth,
        decisions=decisions,
        clusters=data.household_id.loc[ids].to_numpy(),
        config=config,
    )


def write_report(
    document: Mapping[str, Any], out: Path, gaps: Sequence[Mapping[str, Any]] | None = None
) -> tuple[Path, Path]:
    """Write ``fairness_audit.json`` and ``fairness_audit.html`` (with gap plots) into a folder."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "fairness_audit.json", out / "fairness_audit.html"
    text = json.dumps(document, separators=(",", ":"), allow_nan=False)
    json_path.write_text(text, encoding="utf-8")
    html_path.write_text(render_html(document, gaps), encoding="utf-8")
    return json_path, html_path


__all__ = [
    "JSON_SCHEMA",
    "SCHEMA",
    "SCHEMA_VERSION",
    "audit_scored",
    "label_gap",
    "load_decisions",
    "pseudonymise_document",
    "records",
    "render_html",
    "to_document",
    "validate_document",
    "write_report",
]
