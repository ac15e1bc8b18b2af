"""Explanation plots: SVG for pages (no JavaScript, nothing fetched), PNG for reports and MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import matplotlib

matplotlib.use("Agg")  # no display on servers or in CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from explain.reasons import Reason

RAISE_COLOUR = "#b3261e"
LOWER_COLOUR = "#1f5f99"
BAR_HEIGHT = 22
LABEL_WIDTH = 330


def bars_svg(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    *,
    width: int = 640,
    value_labels: Sequence[str] | None = None,
) -> str:
    """Horizontal bars around a zero line; the sign is written (+/−), not left to colour.

    ``value_labels`` (words such as "raises, strong") replace the numbers at the bars' ends.
    """
    n = len(labels)
    height = 30 + n * (BAR_HEIGHT + 6)
    value_width = 70 if value_labels is None else 130
    width += value_width - 70
    plot_width = width - LABEL_WIDTH - value_width
    extent = max((abs(v) for v in values), default=0.0) or 1.0
    zero = LABEL_WIDTH + plot_width / 2
    scale = plot_width / 2 / extent
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-label={quoteattr(title)}>',
        f"<title>{escape(title)}</title>",
        f'<line x1="{zero:.1f}" y1="20" x2="{zero:.1f}" y2="{height - 4}" stroke="#555"/>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 24 + i * (BAR_HEIGHT + 6)
        length = abs(value) * scale
        x = zero if value >= 0 else zero - length
        colour = RAISE_COLOUR if value > 0 else LOWER_COLOUR
        sign = "+" if value > 0 else "−" if value < 0 else "±"
        shown = f"{sign}{abs(value):.2f}" if value_labels is None else value_labels[i]
        parts += [
            "<g>",
            f"<title>{escape(label)}: {escape(shown)}</title>",
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end" font-size="12"'
            f' font-family="sans-serif">{escape(_clip(label, 52))}</text>',
            f'<rect x="{x:.1f}" y="{y}" width="{max(length, 1):.1f}" height="{BAR_HEIGHT}"'
            f' fill="{colour}"/>',
            f'<text x="{width - 6}" y="{y + 15}" text-anchor="end" font-size="12"'
            f' font-family="sans-serif">{escape(shown)}</text>',
            "</g>",
        ]
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


REASONS_TITLE = (
    "What moved this score (log-odds): bars to the right raise priority, to the left lower it"
)


REASONS_WORDS_TITLE = (
    "What moved this score: bars to the right raise priority, to the left lower it; "
    "longer bars moved it more"
)


def reasons_words_svg(labels: Sequence[str], values: Sequence[float], words: Sequence[str]) -> str:
    """A referral's reasons as bars labelled in words (for pages: no log-odds shown)."""
    return bars_svg(labels, values, REASONS_WORDS_TITLE, value_labels=words)


def reasons_svg(reasons: Sequence[Reason], *, top: int = 8) -> str:
    """A referral's top reasons as a bar chart (log-odds); red raises, blue lowers priority."""
    shown = list(reasons[:top])
    return bars_svg([r.sentence for r in shown], [r.contribution for r in shown], REASONS_TITLE)


def importance_svg(table: pd.DataFrame, *, top: int = 15) -> str:
    """Mean absolute contribution per signal, as bars."""
    head = table.head(top)
    return bars_svg(
        list(head["signal"]),
        list(head["mean_abs_contribution"]),
        "Signal importance: mean absolute contribution (log-odds)",
    )


def importance_png(table: pd.DataFrame, path: Path, *, top: int = 20) -> Path:
    """Signal importance as a PNG bar chart."""
    head = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(head) + 1.2))
    ax.barh(head["signal"], head["mean_abs_contribution"], color="#444")
    ax.set(xlabel="mean |contribution| (log-odds)", title="Signal importance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def beeswarm_png(data: pd.DataFrame, path: Path) -> Path:
    """Each sampled referral's contribution per signal, coloured by the signal's value rank."""
    signals = list(dict.fromkeys(data["signal"]))
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(signals) + 1.5))
    rng = np.random.default_rng(0)
    for i, name in enumerate(reversed(signals)):
        part = data[data["signal"] == name]
        jitter = rng.uniform(-0.3, 0.3, len(part))
        colours = part["value_rank"].fillna(0.0)
        ax.scatter(
            part["contribution"], i + jitter, c=colours, cmap="coolwarm", s=6, vmin=0, vmax=1
        )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(signals)), list(reversed(signals)))
    ax.set(
        xlabel="contribution (log-odds)", title="Contributions by signal (colour: value, low→high)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def group_difference_png(table: pd.DataFrame, path: Path, *, top: int = 12) -> Path:
    """The signals that account for a gap in mean log-odds between two groups."""
    head = table.head(top).iloc[::-1]
    a, b = table.attrs.get("group_a", "a"), table.attrs.get("group_b", "b")
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(head) + 1.4))
    colours = [RAISE_COLOUR if d > 0 else LOWER_COLOUR for d in head["difference"]]
    ax.barh(head["signal"], head["difference"], color=colours)
    ax.axvline(0, color="grey", linewidth=0.8)
    gap = table.attrs.get("log_odds_gap", float(table["difference"].sum()))
    ax.set(
        xlabel=f"difference in mean contribution, {a} minus {b} (log-odds)",
        title=f"Why scores differ: {a} vs {b} (gap {gap:+.2f} log-odds)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
