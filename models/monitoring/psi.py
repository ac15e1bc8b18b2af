"""Population stability index with bins fixed from the reference period's quantiles."""

from __future__ import annotations

import numpy as np

FLOOR = 1e-4
"""Share given to an empty bin, so a bin empty on one side counts heavily but finitely."""


def reference_edges(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the reference's quantiles at 1/bins … (bins-1)/bins, duplicates merged.

    Bins are (-inf, e1], (e1, e2], …, (ek, inf), plus one bin for missing values. A binary or
    small-count signal has few distinct quantiles, so it gets as many bins as it has values.
    """
    present = values[~np.isnan(values)]
    if present.size == 0:
        return np.empty(0)
    quantiles = np.quantile(present, np.arange(1, bins) / bins, method="lower")
    return np.unique(quantiles)


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values in each bin of ``edges`` (see ``reference_edges``), missing values last."""
    missing = np.isnan(values)
    index = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(index, minlength=edges.size + 1).astype(float)
    counts = np.append(counts, missing.sum())
    total = counts.sum()
    return counts / total if total else counts


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI between two share vectors: sum of (current - reference) * ln(current / reference)."""
    r = np.maximum(reference, FLOOR)
    c = np.maximum(current, FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_of(reference_values: np.ndarray, current_values: np.ndarray, bins: int = 10) -> float:
    """PSI of raw values, binned on the reference's quantiles."""
    edges = reference_edges(reference_values, bins)
    return psi(bin_shares(reference_values, edges), bin_shares(current_values, edges))
