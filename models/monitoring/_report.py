"""The monitoring document: drift, scores, calibration, selection, human agreement, unscored.

Aggregates only: counts below ``Thresholds.suppress_below`` are withheld, and figures from
fewer than ``Thresholds.min_count`` referrals carry a small-number caution and raise no alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.monitoring._config import AGREE, MonitorData, Thresholds
from models.monitoring._windows import Windows, month_of
from models.monitoring.psi import bin_shares, psi, reference_edges

OK, WARN, ALERT, SMALL = "ok", "warning", "alert", "small"
ALERT_KINDS = (
    "signal_drift",
    "score_drift",
    "calibration",
    "selection",
    "group_selection",
    "overrides",
    "unscored",
)
"""Every kind of alert the monitor raises."""


@dataclass(frozen=True)
class Alert:
    """One threshold crossed: what, where (signal or group), which month, by how much."""

    kind: str
    subject: str
    month: str
    value: float
    threshold: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "month": self.month,
            "value": round(self.value, 4),
            "threshold": self.threshold,
            "message": self.message,
        }


def _count(n: int, t: Thresholds) -> int | None:
    """A count, or None when it is small enough to identify someone."""
    return None if 0 < n < t.suppress_below else int(n)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _plain(signal: str) -> str:
    """A signal's name as words: ``“relative friend concerns in the last 365 days”``."""
    words = re.sub(r"_(\d+)d$", r" in the last \1 days", signal).replace("_", " ")
    return f"“{words}”"


class _Monitor:
    """Computes each section for one ``MonitorData`` and collects the alerts."""

    def __init__(self, data: MonitorData, windows: Windows, t: Thresholds) -> None:
        self.t = t
        self.w = windows
        at = pd.to_datetime(data.received_at, utc=True)
        self.data = data
        self.month = month_of(at)
        self.reference = ((at >= windows.reference_start) & (at < windows.reference_end)).to_numpy()
        self.scored = data.probability.notna().to_numpy()
        self.alerts: list[Alert] = []

    def _in(self, month: str) -> np.ndarray:
        return (self.month == month).to_numpy()

    def _alert(
        self, kind: str, subject: str, month: str, value: float, rule: str, msg: str
    ) -> None:
        self.alerts.append(Alert(kind, subject, month, value, rule, msg))

    def _psi_figure(self, value: float) -> str:
        """The figure behind a shift alert, with the threshold that makes it large."""
        return f"PSI {value:.2f}; above {self.t.psi_alert:g} is a large shift"

    def _level_psi(self, value: float, n: int) -> str:
        if n < self.t.min_count:
            return SMALL
        return ALERT if value > self.t.psi_alert else WARN if value > self.t.psi_warn else OK

    def drift(self) -> list[dict[str, Any]]:
        """PSI of each signal in each monitored month against the reference's bins."""
        rows = []
        ref = self.reference & self.scored
        for name in self.data.signals.columns:
            values = self.data.signals[name].to_numpy(dtype=float)
            edges = reference_edges(values[ref], self.t.bins)
            base = bin_shares(values[ref], edges)
            by_month = {}
            for month in self.w.months:
                mine = self._in(month) & self.scored
                n = int(mine.sum())
                value = psi(base, bin_shares(values[mine], edges)) if n else float("nan")
                level = self._level_psi(value, n) if n else SMALL
                by_month[month] = {"psi": _round(value), "n": _count(n, self.t), "level": level}
                if level == ALERT:
                    self._alert(
                        "signal_drift", str(name), month, value, f"PSI > {self.t.psi_alert}",
                        f"The values of {_plain(str(name))} have shifted a lot since the "
                        f"reference period, in {month} ({self._psi_figure(value)})",
                    )  # fmt: skip
            rows.append(
                {
                    "signal": str(name),
                    "edges": [float(e) for e in edges],
                    "reference_shares": [round(float(s), 4) for s in base],
                    "months": by_month,
                }
            )
        return rows

    def scores(self) -> dict[str, Any]:
        """Score distribution by month (quantiles) and its PSI against the reference."""
        p = self.data.probability.to_numpy(dtype=float)
        ref = self.reference & self.scored
        edges = reference_edges(p[ref], self.t.bins)
        base = bin_shares(p[ref], edges)
        rows = []
        for label, mine in [("reference", ref)] + [
            (m, self._in(m) & self.scored) for m in self.w.months
        ]:
            n = int(mine.sum())
            values = p[mine]
            row: dict[str, Any] = {"month": label, "n": _count(n, self.t)}
            if n >= self.t.suppress_below:
                q = np.quantile(values, [0.1, 0.5, 0.9])
                row |= {
                    "mean": _round(values.mean()),
                    "p10": _round(q[0]),
                    "p50": _round(q[1]),
                    "p90": _round(q[2]),
                }
            if label != "reference":
                value = psi(base, bin_shares(values, edges)) if n else float("nan")
                row["psi"] = _round(value)
                row["level"] = self._level_psi(value, n) if n else SMALL
                if row["level"] == ALERT:
                    self._alert(
                        "score_drift", "score", label, value, f"PSI > {self.t.psi_alert}",
                        f"The model's scores have shifted a lot since the reference period, "
                        f"in {label} ({self._psi_figure(value)})",
                    )  # fmt: skip
            rows.append(row)
        return {"edges": [float(e) for e in edges], "by_month": rows}

    def _calibration_row(self, mine: np.ndarray, month: str, subject: str) -> dict[str, Any]:
        y = self.data.label.to_numpy(dtype=float)
        p = self.data.probability.to_numpy(dtype=float)
        known = mine & self.scored & ~np.isnan(y)
        n = int(known.sum())
        row: dict[str, Any] = {"month": month, "n_known": _count(n, self.t)}
        if n < self.t.suppress_below:
            row["level"] = SMALL
            return row
        observed, expected = float(y[known].sum()), float(p[known].sum())
        spread = float(np.sqrt(np.sum(p[known] * (1 - p[known]))))
        z = (observed - expected) / spread if spread > 0 else 0.0
        ratio = observed / expected if expected > 0 else float("nan")
        r = self.t.calibration_ratio
        off = np.isfinite(ratio) and not (1 / r <= ratio <= r)
        level = (
            SMALL
            if n < self.t.min_count
            else ALERT
            if off and abs(z) >= self.t.calibration_z
            else OK
        )
        row |= {
            "observed_rate": _round(observed / n),
            "expected_rate": _round(expected / n),
            "ratio": _round(ratio, 3),
            "z": _round(z, 2),
            "level": level,
        }
        if level == ALERT and month != "reference":
            self._alert(
                "calibration", subject, month, ratio,
                f"observed/expected outside [{1 / r:.2f}, {r:.2f}], |z| >= {self.t.calibration_z}",
                f"For {subject}, the outcome happened {'more' if ratio > 1 else 'less'} often "
                f"than the model predicted in {month} ({observed / n:.1%} of referrals against "
                f"{expected / n:.1%} predicted)",
            )  # fmt: skip
        return row

    def calibration(self) -> dict[str, Any]:
        """Observed against predicted, where outcomes are known: by month, overall and by group."""
        overall = [self._calibration_row(self.reference, "reference", "all referrals")]
        overall += [self._calibration_row(self._in(m), m, "all referrals") for m in self.w.months]
        groups: dict[str, list[dict[str, Any]]] = {}
        for grouping in self.data.groups.columns:
            column = self.data.groups[grouping].astype(str).to_numpy()
            rows = []
            for group in sorted(set(column[self.reference | np.isin(self.month, self.w.months)])):
                member = column == group
                subject = f"{grouping}={group}"
                for month in self.w.months:
                    rows.append(
                        {
                            "group": group,
                            **self._calibration_row(member & self._in(month), month, subject),
                        }
                    )
            groups[str(grouping)] = rows
        return {"overall": overall, "groups": groups}

    def selection(self) -> dict[str, Any]:
        """Share of referrals above the reference's capacity threshold, by month and group."""
        p = self.data.probability.to_numpy(dtype=float)
        ref = self.reference & self.scored
        if not ref.any():
            return {"threshold": None, "reference_rate": None, "overall": [], "groups": {}}
        threshold = float(np.quantile(p[ref], 1 - self.t.capacity))
        chosen = self.scored & (p >= threshold)
        # The reference's own share at or above the threshold: the capacity, or more where
        # scores tie at the threshold.
        cap, r = float(chosen[ref].mean()), self.t.selection_ratio
        overall = []
        for month in self.w.months:
            mine = self._in(month) & self.scored
            n = int(mine.sum())
            rate = float(chosen[mine].mean()) if n else float("nan")
            z = (rate - cap) / np.sqrt(cap * (1 - cap) / n) if n else 0.0
            off = not cap / r <= rate <= cap * r and abs(z) >= 3
            level = SMALL if n < self.t.min_count else ALERT if off else OK
            overall.append(
                {
                    "month": month,
                    "n": _count(n, self.t),
                    "rate": _round(rate) if n >= self.t.suppress_below else None,
                    "level": level,
                }
            )
            if level == ALERT:
                self._alert(
                    "selection", "all referrals", month, rate,
                    f"outside [{cap / r:.3f}, {cap * r:.3f}] and 3 standard errors",
                    f"{rate:.1%} of referrals above the capacity threshold in {month} "
                    f"(the reference: {cap:.1%})",
                )  # fmt: skip
        groups: dict[str, list[dict[str, Any]]] = {}
        for grouping in self.data.groups.columns:
            column = self.data.groups[grouping].astype(str).to_numpy()
            rows = []
            for group in sorted(
                set(column[ref | (np.isin(self.month, self.w.months) & self.scored)])
            ):
                member = column == group
                in_ref = ref & member
                n_ref = int(in_ref.sum())
                base = float(chosen[in_ref].mean()) if n_ref else float("nan")
                for month in self.w.months:
                    mine = self._in(month) & self.scored & member
                    n = int(mine.sum())
                    rate = float(chosen[mine].mean()) if n else float("nan")
                    level = SMALL
                    if n >= self.t.min_count and n_ref >= self.t.min_count:
                        se = np.sqrt(max(base * (1 - base), 1e-6) / n)
                        moved = abs(rate - base) > self.t.group_selection_change
                        level = ALERT if moved and abs(rate - base) / se >= 3 else OK
                    shown = n >= self.t.suppress_below
                    rows.append(
                        {
                            "group": group,
                            "month": month,
                            "n": _count(n, self.t),
                            "rate": _round(rate) if shown else None,
                            "reference_rate": _round(base)
                            if n_ref >= self.t.suppress_below
                            else None,
                            "level": level,
                        }
                    )
                    if level == ALERT:
                        self._alert(
                            "group_selection", f"{grouping}={group}", month, rate - base,
                            f"|change| > {self.t.group_selection_change} and 3 standard errors",
                            f"{grouping} {group}: {rate:.1%} selected in {month} against "
                            f"{base:.1%} in the reference",
                        )  # fmt: skip
            groups[str(grouping)] = rows
        return {
            "threshold": _round(threshold, 6),
            "reference_rate": _round(cap),
            "overall": overall,
            "groups": groups,
        }

    def human(self) -> list[dict[str, Any]]:
        """Decisions recorded with an agreement, by month: agreeing, and disagreeing (overrides)."""
        agreement = self.data.agreement.astype(object).where(self.data.agreement.notna(), None)
        recorded = agreement.notna().to_numpy()
        overriding = recorded & (agreement != AGREE).to_numpy()
        ref = self.reference & recorded
        n_ref = int(ref.sum())
        base = float(overriding[ref].mean()) if n_ref else float("nan")
        rows = [
            self._human_row(
                "reference", ref, agreement, overriding, OK if n_ref >= self.t.min_count else SMALL
            )
        ]
        for month in self.w.months:
            mine = self._in(month) & recorded
            n = int(mine.sum())
            rate = float(overriding[mine].mean()) if n else float("nan")
            level = SMALL
            if n >= self.t.min_count and n_ref >= self.t.min_count:
                level = ALERT if abs(rate - base) > self.t.override_change else OK
            rows.append(self._human_row(month, mine, agreement, overriding, level))
            if level == ALERT:
                self._alert(
                    "overrides", "decisions", month, rate,
                    f"|change| > {self.t.override_change} from the reference's {base:.1%}",
                    f"{rate:.1%} of decisions disagreed with the band in {month} against "
                    f"{base:.1%} in the reference",
                )  # fmt: skip
        return rows

    def _human_row(
        self, month: str, mine: np.ndarray, agreement: pd.Series, overriding: np.ndarray, level: str
    ) -> dict[str, Any]:
        n = int(mine.sum())
        counts = agreement[mine].value_counts()
        row: dict[str, Any] = {"month": month, "decisions": _count(n, self.t), "level": level}
        for kind in (AGREE, "should_be_higher", "should_be_lower"):
            row[kind] = _count(int(counts.get(kind, 0)), self.t)
        row["override_rate"] = (
            _round(float(overriding[mine].mean())) if n >= self.t.suppress_below else None
        )
        return row

    def unscored(self) -> list[dict[str, Any]]:
        """Share of each month's referrals without a score (of those that should have one)."""
        rows = []
        expected = self.data.scoring_expected
        due = np.ones(self.scored.size, dtype=bool) if expected is None else expected.to_numpy()
        for month in self.w.months:
            mine = self._in(month) & due
            n = int(mine.sum())
            missing = int((mine & ~self.scored).sum())
            share = missing / n if n else float("nan")
            level = (
                SMALL
                if n < self.t.suppress_below
                else ALERT
                if share > self.t.unscored_share
                else OK
            )
            shown = n >= self.t.suppress_below
            rows.append(
                {
                    "month": month,
                    "referrals": _count(n, self.t),
                    "unscored": _count(missing, self.t),
                    "share": _round(share) if shown else None,
                    "level": level,
                }
            )
            if level == ALERT:
                self._alert(
                    "unscored", "referrals", month, share, f"> {self.t.unscored_share}",
                    f"{share:.1%} of referrals in {month} have no score",
                )  # fmt: skip
        return rows


def monitor(
    data: MonitorData,
    windows: Windows,
    *,
    thresholds: Thresholds | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The monitoring document (JSON-ready): every section, and the alerts they raise."""
    t = thresholds or Thresholds()
    m = _Monitor(data, windows, t)
    n_ref = int(m.reference.sum())
    document: dict[str, Any] = {
        "meta": dict(meta or {}),
        "reference": {
            "from": windows.reference_start.isoformat(),
            "until": windows.reference_end.isoformat(),
            "referrals": _count(n_ref, t),
            "scored": _count(int((m.reference & m.scored).sum()), t),
        },
        "months": list(windows.months),
        "thresholds": t.as_dict(),
        "signals": m.drift(),
        "scores": m.scores(),
        "calibration": m.calibration(),
        "selection": m.selection(),
        "human": m.human(),
        "unscored": m.unscored(),
    }
    document["alerts"] = [a.as_dict() for a in m.alerts]
    return document


def alert_counts(document: Mapping[str, Any]) -> dict[str, int]:
    """Alerts in a document, by kind."""
    counts: dict[str, int] = {}
    for alert in document.get("alerts", []):
        counts[alert["kind"]] = counts.get(alert["kind"], 0) + 1
    return counts


def latest_signal_psi(document: Mapping[str, Any]) -> dict[str, float]:
    """Each signal's PSI in the last monitored month that has enough referrals."""
    out = {}
    for row in document.get("signals", []):
        for month in reversed(document.get("months", [])):
            cell = row["months"].get(month, {})
            if cell.get("level") != SMALL and cell.get("psi") is not None:
                out[row["signal"]] = float(cell["psi"])
                break
    return out
