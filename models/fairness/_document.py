"""The audit as a versioned JSON document: schema, summary sentences, pseudonymisation, files."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from models.dataset import TrainingData
from models.fairness._audit import FairnessAudit, audit
from models.fairness._config import (
    DISPARITY,
    ECE_MIN_SIZE,
    ESCALATING,
    HIGH_BANDS,
    HUMAN_TOLERANCE,
    INSUFFICIENT,
    LABEL_FREE,
    TOLERANCE_VERSION,
    WITHIN,
    AuditConfig,
)
from models.fairness._disclosure import RULE, Withheld, metric_block, withhold
from models.fairness._groups import OVERALL, SEPARATOR, audit_attributes
from models.fairness._html import render_html
from models.fairness._quarters import CHI_SQUARE, QUARTER_METRICS, WALD
from models.fairness._views import human_against_model, summary_measures
from models.fairness._words import KEY_METRICS, metric_words, percent, points
from models.scorer import Scorer

SCHEMA = "triage/fairness-audit"


SCHEMA_VERSION = "2.1.0"
"""Bumped on any change to the document's fields: major for removals, minor for additions.

2.1: the quarter view has the mean score, calibration gap and AUC, and bootstrap intervals
(``lower``, ``upper``) on every figure; each test for change names its ``method``.
"""


DEFAULT_MIN_COUNT = 10


_ROW_TABLES = (
    "metrics",
    "comparisons",
    "reliability",
    "ranking",
    "human",
    "human_comparisons",
    "by_quarter",
    "quarter_change",
)


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
        "summary_measures",
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
                "properties": {"verdict": {"enum": [WITHIN, DISPARITY, INSUFFICIENT, None]}},
            },
        },
        "ranking": {"type": "array"},
        "human": {"type": ["array", "null"]},
        "why_gaps": {"type": "array"},
        "summary_measures": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["grouping", "capacity", "measure", "method", "difference", "ratio"],
            },
        },
        "human_vs_model": {"type": ["array", "null"]},
        "by_quarter": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": [
                    "grouping",
                    "group",
                    "label",
                    "metric",
                    "quarter",
                    "estimate",
                    "lower",
                    "upper",
                ],
                "properties": {
                    "metric": {"enum": list(QUARTER_METRICS)},
                    # Withheld rows keep their labels and lose every number.
                    "lower": {"type": ["number", "null"]},
                    "upper": {"type": ["number", "null"]},
                },
            },
        },
        "quarter_change": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": ["grouping", "group", "label", "metric", "method", "p_value"],
                "properties": {
                    "metric": {"enum": list(QUARTER_METRICS)},
                    "method": {"enum": [CHI_SQUARE, WALD]},
                },
            },
        },
        "summary": {"type": "object", "required": ["sentences", "verdicts"]},
        "disclosure": {
            "type": "object",
            "required": ["source", "primary", "secondary", "min_count", "min_size"],
        },
        "structure": {"type": "object", "required": ["groupings", "labels", "atoms"]},
    },
}
"""JSON Schema of the document; `schema_version` says which version a document follows."""


def records(frame: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """Rows as JSON-ready dicts: NaN and infinities become null, numpy scalars plain."""
    if frame is None:
        return None
    out: list[dict[str, Any]] = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[cast(str, key)] = value  # the audit's tables name their columns in text
        out.append(clean)
    return out


def _sentence(row: Mapping[str, Any]) -> str:
    """One comparison in plain language."""
    metric = row["metric"]
    rate_like = not metric.startswith(("auc", "calibration_slope", "calibration_intercept"))
    fmt = percent if rate_like else (lambda v: "n/a" if v is None else f"{v:.3f}")
    diff = row.get("difference")
    diff_text = points(diff) if rate_like else ("n/a" if diff is None else f"{diff:+.3f}")
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
    for key, part in comparisons.groupby("grouping", sort=False):
        grouping = cast(str, key)  # grouping names are text
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


def _label_sentence(gap: pd.DataFrame | None) -> str | None:
    """Where the observed label understates the latent harm most, in words."""
    if gap is None or gap.empty:
        return None
    rates = gap[(gap["metric"] == "base_rate") & ~gap["grouping"].str.contains(SEPARATOR)]
    rates = rates[rates["grouping"] != OVERALL].dropna(subset=["gap"])
    if rates.empty:
        return None
    worst = rates.loc[rates["gap"].idxmin()]  # type: ignore[call-overload]  # an index label
    best = rates.loc[rates["gap"].idxmax()]  # type: ignore[call-overload]  # an index label
    return (
        "Against the latent truth, the observed outcome understates harm most for "
        f"{worst['group']} ({worst['grouping']}: observed {percent(worst['observed'])}, "
        f"true {percent(worst['truth'])}) and least for {best['group']} ({best['grouping']}: "
        f"{percent(best['observed'])} against {percent(best['truth'])}); where this gap differs "
        "between groups the label itself is biased."
    )


def _human_sentence(human: pd.DataFrame | None, found: pd.DataFrame | None) -> str | None:
    """The spread of agreement between practitioners and the model's band, in words."""
    if human is None or human.empty:
        return None
    rows = human[
        (human["metric"] == "agreement_with_band")
        & ~human["grouping"].str.contains(SEPARATOR)
        & (human["grouping"] != OVERALL)
    ].dropna(subset=["estimate"])
    if rows.empty:
        return None
    low = rows.loc[rows["estimate"].idxmin()]  # type: ignore[call-overload]  # an index label
    high = rows.loc[rows["estimate"].idxmax()]  # type: ignore[call-overload]  # an index label
    count = int((found["verdict"] == DISPARITY).sum()) if found is not None else 0
    return (
        "Practitioners' decisions agree with the model's band least for "
        f"{low['group']} ({low['grouping']}, {percent(low['estimate'])}) and most for "
        f"{high['group']} ({high['grouping']}, {percent(high['estimate'])}); {count} "
        "human-decision comparisons show a disparity."
    )


def _summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """Verdict counts and plain-language sentences from a document's own (shown) tables."""

    def frame(name: str) -> pd.DataFrame | None:
        rows = document.get(name)
        if rows is None:
            return None
        return pd.DataFrame([r for r in rows if not r.get("withheld")])

    comparisons = frame("comparisons")
    if comparisons is None or comparisons.empty:
        comparisons = pd.DataFrame(columns=["label", "verdict", "grouping", "group", "metric"])
    labels = document["meta"].get("labels") or ["observed"]
    verdict_counts = {
        label: comparisons[comparisons["label"] == label]["verdict"].value_counts().to_dict()
        for label in labels
    }
    sentences = summary_sentences(comparisons[comparisons["label"] == "observed"])
    extra = (
        _label_sentence(frame("label_gap")),
        _human_sentence(frame("human"), frame("human_comparisons")),
    )
    sentences += [s for s in extra if s]
    if document.get("suppressed"):
        sentences.append(
            f"{len(document['suppressed'])} groups are withheld: fewer than "
            f"{document['config']['min_size']} referrals, or withheld so that a smaller group "
            "cannot be worked out from the totals. They are listed and not shown or tested."
        )
    return {"verdicts": verdict_counts, "sentences": sentences}


def to_document(
    result: FairnessAudit,
    *,
    meta: Mapping[str, Any] | None = None,
    gaps: Sequence[Mapping[str, Any]] = (),
    pseudonymise: bool = False,
    min_count: int | None = None,
) -> dict[str, Any]:
    """The audit as a JSON-ready document following ``JSON_SCHEMA`` (version ``SCHEMA_VERSION``).

    The internal document keeps every figure and the ``structure`` disclosure control needs.
    ``pseudonymise`` returns the published version instead (``pseudonymise_document``):
    identifying metadata dropped, primary and secondary suppression at ``min_count`` (default
    10) across every table. This is what a researcher route serves.
    """
    config = result.config
    meta = dict(meta or {})
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
            "household: Poisson(1) weight per household over score cells × labels"
            if result.inference == "household"
            else "stratified within each group: multinomial over score cells × labels"
        ),
        "inference": result.inference,
        "label_free_metrics": list(LABEL_FREE),
        "human_capacity": result.human_capacity,
        "n_cells": config.n_cells,
        "n_bins": config.n_bins,
        "seed": config.seed,
        "min_count": None,
        "escalating_decisions": list(ESCALATING),
        "high_bands": list(HIGH_BANDS),
    }
    tables: dict[str, list[dict[str, Any]] | None] = {
        name: records(getattr(result, name)) for name in _ROW_TABLES
    }
    groups = result.groups[~result.groups["suppressed"]].drop(columns="suppressed")
    tables["groups"] = records(groups)
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "meta": {"n": result.n, "labels": list(result.labels), **meta},
        "config": config_doc,
        "thresholds": {str(k): v for k, v in result.thresholds.items()},
        "references": result.references,
        "suppressed": records(result.suppressed),
        "label_gap": records(label_gap(result)),
        # Images stay in the HTML; the document keeps the numbers.
        "why_gaps": [{k: v for k, v in g.items() if k != "image"} for g in gaps],
        **tables,
        # Internal only: what disclosure control needs; never in a published document.
        "structure": result.structure,
    }
    document["summary_measures"] = summary_measures(document)
    document["human_vs_model"] = human_against_model(document)
    document["summary"] = _summary(document)
    if pseudonymise:
        return pseudonymise_document(
            document, min_count=DEFAULT_MIN_COUNT if min_count is None else min_count
        )
    return document


_IDENTIFYING_META = ("source", "run_id", "data_fingerprint")


def _withhold_row(row: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """A row with its labels kept and every number (and verdict) removed."""
    out: dict[str, Any] = {
        k: (None if isinstance(v, int | float) and not isinstance(v, bool) and k not in keep else v)
        for k, v in row.items()
    }
    if "verdict" in out:
        out["verdict"] = None
    out["withheld"] = True
    return out


def pseudonymise_document(
    document: Mapping[str, Any], *, min_count: int = DEFAULT_MIN_COUNT
) -> dict[str, Any]:
    """A stored audit document as a researcher may see it: no identifiers, disclosure control.

    Primary and secondary suppression (``models.fairness._disclosure``) across every table:
    no withheld cell can be worked out from shown cells, totals, comparisons, rankings or
    reliability bins. What ``to_document(pseudonymise=True)`` returns, and what the API serves.
    """
    if "structure" not in document:
        raise ValueError(
            "this audit document predates disclosure control (schema 1): re-run the audit"
        )
    withheld = withhold(document, min_count=min_count)
    # A deep copy; the stored document stays as it was.
    out: dict[str, Any] = json.loads(json.dumps(document))
    out.pop("structure")
    out["meta"] = {k: v for k, v in out.get("meta", {}).items() if k not in _IDENTIFYING_META}
    out["config"]["min_count"] = min_count
    out["disclosure"] = {
        **RULE,
        "min_count": min_count,
        "min_size": out["config"]["min_size"],
        "withheld": withheld.counts,
    }
    secondary = "withheld so that a smaller group cannot be worked out (secondary suppression)"
    out["suppressed"] = [
        {k: v for k, v in row.items() if k != "n"} for row in out.get("suppressed") or []
    ]
    groups = []
    for row in out.get("groups") or []:
        if (row["grouping"], row["group"]) in withheld.groups:
            out["suppressed"].append(
                {"grouping": row["grouping"], "group": row["group"], "reason": secondary}
            )
        else:
            groups.append(row)
    out["groups"] = groups
    gone = withheld.groups
    for grouping, reference in (out.get("references") or {}).items():
        reference["suppressed"] = bool(reference.get("suppressed")) or (
            (grouping, reference["group"]) in gone
        )

    def metric_hidden(grouping: str, group: str, label: str, metric: str) -> bool:
        key = (grouping, group)
        if metric == "ece" and (grouping, group, label) in withheld.ece:
            return True
        return withheld.block(metric_block(metric, label), key)

    def cut(rows: list[dict[str, Any]] | None, hide: Any) -> list[dict[str, Any]] | None:
        if rows is None:
            return None
        kept = [r for r in rows if (r["grouping"], r["group"]) not in gone]
        return [_withhold_row(r) if hide(r) else r for r in kept]

    out["metrics"] = cut(
        out.get("metrics"),
        lambda r: metric_hidden(r["grouping"], r["group"], r["label"], r["metric"]),
    )
    out["comparisons"] = cut(
        out.get("comparisons"),
        lambda r: (
            metric_hidden(r["grouping"], r["group"], r["label"], r["metric"])
            or metric_hidden(r["grouping"], r["reference"], r["label"], r["metric"])
        ),
    )
    labels = out["meta"].get("labels") or ["observed"]
    out["label_gap"] = cut(
        out.get("label_gap"),
        lambda r: any(metric_hidden(r["grouping"], r["group"], lab, r["metric"]) for lab in labels),
    )
    human_rows = cut(
        out.get("human"), lambda r: withheld.block("human", (r["grouping"], r["group"]))
    )
    out["human"] = human_rows
    out["human_comparisons"] = cut(
        out.get("human_comparisons"),
        lambda r: (
            withheld.block("human", (r["grouping"], r["group"]))
            or withheld.block("human", (r["grouping"], r["reference"]))
        ),
    )
    out["ranking"] = [
        _ranking_row(r, withheld) for r in cut(out.get("ranking"), lambda r: False) or []
    ]
    quarters = withheld.quarters

    def quarter_hidden(r: dict[str, Any], quarter: str) -> bool:
        blocks = (metric_block(r["metric"], r["label"]), "n")
        return any((r["grouping"], r["group"], quarter) in quarters.get(b, set()) for b in blocks)

    out["by_quarter"] = cut(out.get("by_quarter"), lambda r: quarter_hidden(r, r["quarter"]))
    seen = {r.get("quarter") for r in out.get("by_quarter") or []}
    out["quarter_change"] = cut(
        out.get("quarter_change"),
        lambda r: (
            metric_hidden(r["grouping"], r["group"], r["label"], r["metric"])
            or any(quarter_hidden(r, quarter) for quarter in seen)
        ),
    )
    n_bins = int(out["config"].get("n_bins") or 10)
    singles = set(out["config"]["attributes"]) | {OVERALL}
    reliability = []
    for row in cut(out.get("reliability"), lambda r: False) or []:
        if row["grouping"] not in singles:
            continue  # intersections' curves stay internal: too many small bins to protect
        b = min(round(row["bin_lower"] * n_bins), n_bins - 1)
        key = (row["grouping"], row["group"], b)
        if key in withheld.bins["n"]:
            row = _withhold_row(row, keep=("bin_lower", "bin_upper"))
        elif key in withheld.bins.get(f"positives@{row['label']}", set()):
            row = {**row, "observed_rate": None, "withheld": True}
        reliability.append(row)
    out["reliability"] = reliability
    out["why_gaps"] = [
        g
        for g in out.get("why_gaps") or []
        if (g["grouping"], g["group_a"]) not in gone and (g["grouping"], g["group_b"]) not in gone
    ]
    # Views are rebuilt from the shown rows: a withheld figure never enters one.
    out["summary_measures"] = summary_measures(out)
    out["human_vs_model"] = human_against_model(out)
    out["summary"] = _summary(out)
    return out


def _ranking_row(row: dict[str, Any], withheld: Withheld) -> dict[str, Any]:
    """A ranking row with the shares of withheld blocks removed."""
    key = (row["grouping"], row["group"])
    out = dict(row)
    for name in list(out):
        block = None
        if name.startswith(("share_of_top_", "top_")):
            block = (
                f"flagged@{name.removeprefix('share_of_top_').removeprefix('top_').split('_')[0]}"
            )
        elif name == "share_of_positives":
            block = "positives@observed"
        if block is not None and withheld.block(block, key):
            out[name] = None
            out["withheld"] = True
    return out


def label_gap(result: FairnessAudit) -> pd.DataFrame | None:
    """Per group, each metric against the observed label and the latent truth, and the gap."""
    if "truth" not in result.labels:
        return None
    keys = ["grouping", "group", "metric", "label"]
    wide = result.metrics.set_index(keys)["estimate"].unstack("label").reset_index()
    wide.columns.name = None
    wide["gap"] = wide["observed"] - wide["truth"]
    free = wide["metric"].str.split("_at_").str[0].isin(LABEL_FREE)
    return wide[~free].reset_index(drop=True)


def validate_document(document: Mapping[str, Any]) -> None:
    """Raise if the document does not follow ``JSON_SCHEMA``."""
    import jsonschema

    jsonschema.validate(document, JSON_SCHEMA)


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
        investigated = outcomes.set_index("referral_id")["investigated_12m"]
        out["investigated"] = investigated.reindex(referral_ids).fillna(False).astype(bool)
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
    received = pd.to_datetime(data.received_at.loc[ids], utc=True)
    periods = (received.dt.year.astype(str) + "-Q" + received.dt.quarter.astype(str)).to_numpy()
    return audit(
        y,
        probability,
        attributes,
        truth=truth,
        decisions=decisions,
        clusters=data.household_id.loc[ids].to_numpy(),
        periods=periods,
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
