"""Knobs that change part-way through the window: the value in force at each moment."""

from __future__ import annotations

from datetime import date

import numpy as np

from triage.synth.params import WorldParams
from triage.synth.population import YEAR


def drift_day(params: WorldParams) -> float | None:
    """``drift_from`` in window days (None without drift)."""
    if params.drift_from is None or not params.drift:
        return None
    start = date.fromordinal(params.end.toordinal() - round(params.years * YEAR))
    return float((params.drift_from - start).days)


def knob_at(params: WorldParams, name: str, t: np.ndarray) -> float | np.ndarray:
    """The knob's value at window days ``t``: its own, or the drifted one from ``drift_from``.

    Without drift the plain value is returned, so an undrifted world draws exactly as before.
    """
    base = float(getattr(params, name))
    day = drift_day(params)
    if day is None or name not in params.drift:
        return base
    return np.where(np.asarray(t) >= day, float(params.drift[name]), base)
