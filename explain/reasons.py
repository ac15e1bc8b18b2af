"""Reasons: a scorer's per-signal contributions turned into ordered, readable, traceable text."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.catalogue import SIGNALS
from features.pointwise import SignalValue

RAISES = "raises priority"
LOWERS = "lowers priority"
NO_EFFECT = "no effect"

MAX_REASON_RECORD_IDS = 20
"""Record IDs a stored or returned reason lists: the most recent; ``records_omitted`` counts
the older ones (a child with hundreds of referrals made score rows of hundreds of KB)."""


def direction_words(contribution: float) -> str:
    """How a contribution moves the referral in the queue, in words."""
    if contribution > 0:
        return RAISES
    return LOWERS if contribution < 0 else NO_EFFECT


def reason_order(contributions: np.ndarray) -> np.ndarray:
    """Signal positions by absolute contribution, largest first; ties keep the model's order."""
    return np.argsort(-np.abs(contributions), axis=-1, kind="stable")


@dataclass(frozen=True)
class Reason:
    """One signal's part in a score: its value, its pull in log-odds, and the records behind it."""

    signal: str
    value: float | None
    """None when the signal has no value (e.g. no earlier referral to count days from)."""
    contribution: float
    direction: str
    sentence: str
    record_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the ``MAX_REASON_RECORD_IDS`` most recent record IDs.

        Built by hand: ``dataclasses.asdict`` deep-copies, and this is hot. The reason itself
        keeps every ID (the what-if reads them); stored scores and replies keep the bound.
        """
        ids = self.record_ids
        kept = ids[-MAX_REASON_RECORD_IDS:]  # the provenance lists records oldest first
        return {
            "signal": self.signal,
            "value": self.value,
            "contribution": self.contribution,
            "direction": self.direction,
            "sentence": self.sentence,
            "record_ids": list(kept),
            "records_omitted": len(ids) - len(kept),
        }


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def reasons_for_row(
    signals: Sequence[str],
    values: Sequence[float],
    contributions: np.ndarray,
    provenance: Mapping[str, SignalValue] | None = None,
) -> list[Reason]:
    """Every signal's reason for one referral, ordered by absolute contribution."""
    reasons = []
    for j in reason_order(contributions):
        name = signals[j]
        value = float(values[j])
        contribution = float(contributions[j])
        record_ids = provenance[name].record_ids if provenance and name in provenance else ()
        reasons.append(
            Reason(
                signal=name,
                value=_plain(value),
                contribution=contribution,
                direction=direction_words(contribution),
                sentence=SIGNALS[name].sentence(value),
                record_ids=tuple(record_ids),
            )
        )
    return reasons


@dataclass(frozen=True)
class ReasonTable:
    """The top reasons of many referrals as arrays: row i, rank k (sentences on demand)."""

    signals: tuple[str, ...]
    order: np.ndarray
    """Referral x rank: position of the signal in ``signals``."""
    values: np.ndarray
    contributions: np.ndarray

    def sentences(self) -> np.ndarray:
        """Referral x rank sentences, each distinct (signal, value) rendered once."""
        out = np.empty(self.order.shape, dtype=object)
        for j, name in enumerate(self.signals):
            mask = self.order == j
            if not mask.any():
                continue
            unique, inverse = np.unique(self.values[mask], return_inverse=True)
            rendered = np.array([SIGNALS[name].sentence(float(v)) for v in unique], dtype=object)
            out[mask] = rendered[inverse]
        return out

    def row(self, i: int) -> list[Reason]:
        """Referral ``i``'s top reasons as objects (no provenance: batch features carry none)."""
        return [
            Reason(
                signal=self.signals[j],
                value=_plain(float(v)),
                contribution=float(c),
                direction=direction_words(float(c)),
                sentence=SIGNALS[self.signals[j]].sentence(float(v)),
                record_ids=(),
            )
            for j, v, c in zip(self.order[i], self.values[i], self.contributions[i], strict=True)
        ]


def top_reasons(
    signals: Sequence[str], X: np.ndarray, contributions: np.ndarray, *, top: int = 5
) -> ReasonTable:
    """The ``top`` reasons of every row, vectorised (no per-referral Python loop)."""
    top = min(top, contributions.shape[1])
    order = reason_order(contributions)[:, :top]
    rows = np.arange(X.shape[0])[:, None]
    return ReasonTable(
        signals=tuple(signals),
        order=order.astype(np.int16),
        values=X[rows, order],
        contributions=contributions[rows, order],
    )
