"""PNG plots for MLflow and reports: reliability, ROC, and each signal's effect."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers or in CI
import matplotlib.pyplot as plt
import numpy as np

from models.evaluation import reliability_curve


def reliability_plot(
    y: np.ndarray, p: np.ndarray, path: Path, *, truth: np.ndarray | None = None
) -> Path:
    """Observed rate against mean predicted probability, by decile of probability."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    curve = reliability_curve(y, p)
    ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label="observed outcome")
    if truth is not None:
        latent = reliability_curve(truth, p)
        ax.plot(latent["mean_predicted"], latent["observed_rate"], marker="s", label="latent truth")
    ax.set(
        xlabel="predicted probability", ylabel="observed rate", title="Reliability (test period)"
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc_plot(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    """ROC curve of the test period."""
    order = np.argsort(-p, kind="stable")
    ys = y[order]
    tpr = np.r_[0, np.cumsum(ys) / max(ys.sum(), 1)]
    fpr = np.r_[0, np.cumsum(1 - ys) / max((1 - ys).sum(), 1)]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test period)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def effects_plot(
    signals: tuple[str, ...], X: np.ndarray, contributions: np.ndarray, path: Path, top: int = 12
) -> Path:
    """Each of the most important signals' contribution against its value (shape functions)."""
    importance = np.abs(contributions).mean(axis=0)
    chosen = np.argsort(-importance, kind="stable")[:top]
    cols = 4
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, j in zip(axes.ravel(), chosen, strict=False):
        ax.scatter(np.nan_to_num(X[:, j], nan=-1), contributions[:, j], s=4, alpha=0.3)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(signals[j], fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(chosen) :]:
        ax.axis("off")
    fig.suptitle("Contribution to log-odds by signal value (missing shown at -1)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
