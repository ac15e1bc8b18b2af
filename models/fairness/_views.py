"""Views computed from a document's shown rows: summary measures, humans against the model.

Built from the rows a document shows, so the published document's views use only what it
publishes (a withheld group never enters a maximum, a minimum or a pairing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.fairness._groups import OVERALL, OVERALL_GROUP

MEASURES = ("demographic_parity", "equalized_odds")
METHODS = ("between_groups", "to_overall", "to_reference")


def _ratio(a: float, b: float) -> float | None:
    """min/max of two rates (1 when both are 0), as fairlearn's ratios."""
    high = max(a, b)
    return 1.0 if high == 0 else min(a, b) / high


def _spread(
    values: Mapping[str, float], method: str, overall: float | None, reference: float | None
) -> tuple[float | None, float | None]:
    """(difference, ratio) of one rate across groups by one method."""
    if not values:
        return None, None
    rates = list(values.values())
    if method == "between_groups":
        return max(rates) - min(rates), _ratio(min(rates), max(rates))
    anchor = overall if method == "to_overall" else reference
    if anchor is None:
        return None, None
    ratios = [_ratio(r, anchor) for r in rates]
    return max(abs(r - anchor) for r in rates), min(r for r in ratios if r is not None)


Rates = dict[tuple[str, str, str, str], float]


def _series(
    rates: Rates, grouping: str, groups: Sequence[str], metric: str, label: str, transform: Any
) -> dict[str, float]:
    """One metric's shown estimates across a grouping's groups (transformed if asked)."""
    shown = {
        g: rates[(grouping, g, label, metric)]
        for g in groups
        if (grouping, g, label, metric) in rates
    }
    return {g: transform(v) for g, v in shown.items()} if transform else shown


def _anchors(
    rates: Rates, grouping: str, reference: str, metric: str, label: str, transform: Any
) -> tuple[float | None, float | None]:
    """The overall and reference estimates of one metric (transformed if asked)."""
    found = (
        rates.get((OVERALL, OVERALL_GROUP, label, metric)),
        rates.get((grouping, reference, label, metric)),
    )
    if transform is None:
        return found
    return tuple(None if v is None else transform(v) for v in found)  # type: ignore[return-value]


def summary_measures(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Demographic-parity and equalised-odds differences and ratios per grouping and capacity.

    As fairlearn defines them: demographic parity on the selection rate; equalised odds the
    worse of the true-positive-rate and false-positive-rate spreads (a difference is the
    largest, a ratio the smallest). ``between_groups`` spans the shown groups, ``to_overall``
    compares each with the whole scored set, ``to_reference`` with the reference group.
    """
    rates: Rates = {}
    for row in document.get("metrics") or []:
        if row.get("estimate") is not None and not row.get("withheld"):
            rates[(row["grouping"], row["group"], row["label"], row["metric"])] = row["estimate"]
    labels: Sequence[str] = document["meta"].get("labels") or ["observed"]
    references = {g: r["group"] for g, r in (document.get("references") or {}).items()}
    groupings = list(dict.fromkeys(r["grouping"] for r in document.get("groups") or []))
    out = []
    for grouping in groupings:
        if grouping == OVERALL:
            continue
        groups = [r["group"] for r in document.get("groups") or [] if r["grouping"] == grouping]
        reference = references.get(grouping, "")

        def series(
            metric: str,
            label: str,
            transform: Any = None,
            grouping: str = grouping,
            groups: list[str] = groups,
        ) -> dict[str, float]:
            return _series(rates, grouping, groups, metric, label, transform)

        def anchors(
            metric: str,
            label: str,
            transform: Any = None,
            grouping: str = grouping,
            reference: str = reference,
        ) -> tuple[Any, Any]:
            return _anchors(rates, grouping, reference, metric, label, transform)

        for capacity in document.get("thresholds") or {}:
            selection = f"selection_rate_at_{capacity}"
            for method in METHODS:
                values = series(selection, labels[0])
                diff, ratio = _spread(values, method, *anchors(selection, labels[0]))
                out.append(
                    {
                        "grouping": grouping,
                        "label": None,
                        "capacity": int(capacity),
                        "measure": "demographic_parity",
                        "method": method,
                        "difference": diff,
                        "ratio": ratio,
                        "groups": len(values),
                    }
                )
            for label in labels:
                fnr, fpr = f"fnr_at_{capacity}", f"fpr_at_{capacity}"
                for method in METHODS:
                    tpr_values = series(fnr, label, lambda v: 1 - v)
                    fpr_values = series(fpr, label)
                    d1, r1 = _spread(tpr_values, method, *anchors(fnr, label, lambda v: 1 - v))
                    d2, r2 = _spread(fpr_values, method, *anchors(fpr, label))
                    both = [d for d in (d1, d2) if d is not None]
                    ratios = [r for r in (r1, r2) if r is not None]
                    complete = len(both) == 2
                    out.append(
                        {
                            "grouping": grouping,
                            "label": label,
                            "capacity": int(capacity),
                            "measure": "equalized_odds",
                            "method": method,
                            "difference": max(both) if complete else None,
                            "ratio": min(ratios) if len(ratios) == 2 else None,
                            "groups": min(len(tpr_values), len(fpr_values)),
                        }
                    )
    return out


def human_against_model(document: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Per group, practitioners' escalation against the model's queue at the same capacity.

    The model's capacity is the share of all scored referrals that practitioners escalated
    (``config.human_capacity``, to the whole percent): selection, and the share of each
    label's positives reached (escalated, or in the model's queue).
    """
    capacity = document["config"].get("human_capacity")
    if capacity is None or not document.get("human"):
        return None
    label = round(capacity * 100)
    model = {
        (r["grouping"], r["group"], r["label"], r["metric"]): r["estimate"]
        for r in document.get("metrics") or []
        if r.get("estimate") is not None and not r.get("withheld")
    }
    human = {
        (r["grouping"], r["group"], r["metric"]): r["estimate"]
        for r in document["human"]
        if r.get("estimate") is not None and not r.get("withheld")
    }
    labels: Sequence[str] = document["meta"].get("labels") or ["observed"]
    missed = {"observed": "observed_not_escalated", "truth": "harmed_not_escalated"}
    out = []
    for row in document.get("groups") or []:
        key = (row["grouping"], row["group"])
        pairs: list[tuple[str, str | None, float | None, float | None]] = [
            (
                "selected",
                None,
                human.get((*key, "escalated_share")),
                model.get((*key, labels[0], f"selection_rate_at_{label}")),
            )
        ]
        for lab in labels:
            h = human.get((*key, missed.get(lab, "")))
            m = model.get((*key, lab, f"fnr_at_{label}"))
            pairs.append(
                (
                    "positives_reached",
                    lab,
                    None if h is None else 1 - h,
                    None if m is None else 1 - m,
                )
            )
        for measure, which, h, m in pairs:
            out.append(
                {
                    "grouping": row["grouping"],
                    "group": row["group"],
                    "label": which,
                    "measure": measure,
                    "capacity": label,
                    "human": h,
                    "model": m,
                    "difference": None if h is None or m is None else h - m,
                }
            )
    return out
