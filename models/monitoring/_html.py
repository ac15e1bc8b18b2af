"""The self-contained HTML monitoring report: inline PNG plots and the tables behind them.

Python draws the plots and picks the rows; ``templates/report.html.j2`` holds the markup and
escapes every value. The report fetches nothing.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers or in CI
import matplotlib.pyplot as plt
import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

_ENVIRONMENT = Environment(
    loader=PackageLoader("models.monitoring", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
)
TOP_SIGNALS = 15
"""Signals in the drift heat map: those with the highest PSI in any monitored month."""


def _png(fig: Any) -> str:
    """A figure as an inline PNG data URI."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _value(cell: Mapping[str, Any], key: str) -> float:
    value = cell.get(key)
    return float("nan") if value is None else float(value)


def _drift_heatmap(document: Mapping[str, Any]) -> str | None:
    months = document["months"]
    rows = sorted(
        document["signals"],
        key=lambda r: -max((_value(c, "psi") for c in r["months"].values()), default=0.0),
    )[:TOP_SIGNALS]
    if not rows or not months:
        return None
    grid = np.array([[_value(r["months"][m], "psi") for m in months] for r in rows])
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(months), 0.8 + 0.35 * len(rows)))
    limit = max(document["thresholds"]["psi_alert"] * 2, float(np.nanmax(grid, initial=0.0)))
    ax.imshow(np.nan_to_num(grid), cmap="Reds", vmin=0, vmax=limit, aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(months)), months, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [r["signal"] for r in rows], fontsize=8)
    ax.set_title("PSI against the reference (highest first)", fontsize=10)
    return _png(fig)


def _lines(
    title: str,
    months: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    reference: float | None = None,
    ylabel: str = "",
) -> str | None:
    drawn = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v) == len(months)}
    if not months or not any(np.isfinite(v).any() for v in drawn.values()):
        return None  # nothing to draw: the table says why
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = np.arange(len(months))
    for label, values in drawn.items():
        ax.plot(x, values, marker="o", label=label)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", label="reference")
    ax.set_xticks(x, months, rotation=45, ha="right", fontsize=8)
    ax.set(title=title, ylabel=ylabel)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(fig)


def _plots(document: Mapping[str, Any]) -> dict[str, str | None]:
    months = document["months"]
    scores = [r for r in document["scores"]["by_month"] if r["month"] != "reference"]
    reference = document["scores"]["by_month"][0]
    calibration = [r for r in document["calibration"]["overall"] if r["month"] != "reference"]
    selection = document["selection"]
    by_type: dict[str, list[float]] = {}
    for row in selection["groups"].get("referrer_type", []):
        rate = _value(row, "rate")
        by_type.setdefault(row["group"], []).append(rate)
    human = [r for r in document["human"] if r["month"] != "reference"]
    return {
        "drift": _drift_heatmap(document),
        "scores": _lines(
            "Score distribution by month",
            months,
            {q: [_value(r, q) for r in scores] for q in ("p10", "p50", "p90")},
            reference=reference.get("p50"),
            ylabel="probability",
        ),
        "calibration": _lines(
            "Observed outcome rate against predicted (outcomes known)",
            months,
            {
                "observed": [_value(r, "observed_rate") for r in calibration],
                "predicted": [_value(r, "expected_rate") for r in calibration],
            },
        ),
        "selection": _lines(
            "Share above the capacity threshold, overall and by referrer type",
            months,
            {"all referrals": [_value(r, "rate") for r in selection["overall"]]}
            | {k: v for k, v in by_type.items() if np.isfinite(v).any()},
            reference=selection.get("reference_rate"),
        ),
        "human": (
            _lines(
                "Decisions disagreeing with the band",
                months,
                {"override rate": [_value(r, "override_rate") for r in human]},
                reference=document["human"][0].get("override_rate"),
            )
            if any(r.get("override_rate") is not None for r in human)
            else None
        ),
        "unscored": _lines(
            "Referrals without a score",
            months,
            {"unscored share": [_value(r, "share") for r in document["unscored"]]},
            reference=document["thresholds"]["unscored_share"],
        ),
    }


def render_html(document: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    months = document["months"]
    drifting = [
        r
        for r in document["signals"]
        if any(r["months"][m]["level"] in ("alert", "warning") for m in months)
    ]
    template = _ENVIRONMENT.get_template("report.html.j2")
    return template.render(
        document=document,
        meta=document["meta"],
        months=months,
        plots=_plots(document),
        drifting=drifting,
        groupings=list(document["selection"]["groups"]),
    )


def write_report(document: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    html_path.write_text(render_html(document), encoding="utf-8")
    return json_path, html_path
