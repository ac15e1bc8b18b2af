"""The audit of a scored set: model metrics by group and intersection, comparisons, humans.

Every group's metrics come from per-group sufficient statistics. The point estimates are exact
(row level); intervals come from the bootstrap (see ``_bootstrap``) and, for rates, Wilson.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from models.evaluation import at_capacity
from models.fairness._bootstrap import bootstrap_replicates
from models.fairness._config import (
    DISPARITY,
    ECE_MIN_SIZE,
    ESCALATING,
    HUMAN_TOLERANCE,
    INSUFFICIENT,
    LABEL_FREE,
    QUEUE_RATES,
    SHIFTED,
    WITHIN,
    AuditConfig,
)
from models.fairness._groups import (
    OVERALL,
    OVERALL_GROUP,
    Grouping,
    factorize_attribute,
    make_grouping,
)
from models.fairness._metrics import (
    capacity_label,
    exact_metrics,
    human_counts,
    metric_names,
    ranking_table,
)
from models.fairness._order import canonical_order
from models.fairness._quarters import quarter_view
from models.fairness._statistics import (
    adjust,
    compare,
    design_effect,
    household_codes,
    nan_percentiles,
    safe_div,
    two_proportion,
    verdicts,
    wilson_interval,
)


class ReferenceChoice(TypedDict):
    """The reference group chosen for one grouping, and why."""

    group: str
    rule: str
    version: str
    suppressed: bool


@dataclass
class FairnessAudit:
    """Everything the audit measured; tables are long, one row per group × metric."""

    config: AuditConfig
    n: int
    thresholds: dict[int, float]
    groups: pd.DataFrame
    suppressed: pd.DataFrame
    references: dict[str, ReferenceChoice]
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    reliability: pd.DataFrame
    ranking: pd.DataFrame
    human: pd.DataFrame | None
    human_comparisons: pd.DataFrame | None
    labels: tuple[str, ...]
    structure: dict[str, Any]
    """Which groups each combination of attribute values belongs to (for disclosure control)."""
    inference: str
    """'household' (cluster-aware: households resampled whole) or 'independent' (stratified)."""
    human_capacity: float | None = None
    """Share of scored referrals people escalated; the model is audited at it too."""
    by_quarter: pd.DataFrame | None = None
    """Rates by calendar quarter, single groupings, with Wilson intervals."""
    quarter_change: pd.DataFrame | None = None
    """Per group and rate, a test that the rate is the same in every quarter."""

    def summary(
        self, metric: str = "selection_rate_at_10", label: str = "observed"
    ) -> pd.DataFrame:
        """One metric's comparisons, disparities first."""
        table = self.comparisons[
            (self.comparisons["metric"] == metric) & (self.comparisons["label"] == label)
        ]
        rank = table["verdict"].map({DISPARITY: 0, INSUFFICIENT: 1, WITHIN: 2})
        return table.assign(_r=rank).sort_values(["_r", "p_adjusted"]).drop(columns="_r")


def audit(
    y: np.ndarray,
    p: np.ndarray,
    attributes: pd.DataFrame,
    *,
    truth: np.ndarray | None = None,
    decisions: pd.DataFrame | None = None,
    clusters: np.ndarray | None = None,
    periods: np.ndarray | None = None,
    config: AuditConfig | None = None,
) -> FairnessAudit:
    """Audit a scored set: model metrics, intervals, comparisons, verdicts, ranking, humans.

    ``decisions`` (optional) is aligned with the rows: ``decision`` and, where known,
    ``investigated``, the model's ``band`` and the practitioner's recorded ``agreement``.
    ``periods`` (a calendar quarter per row, e.g. ``2026-Q2``) adds the quarter view.
    ``clusters`` (household IDs) make inference cluster-aware by default (``bootstrap='auto'``)
    and are required for ``'household'``; ``'stratified'`` treats referrals as independent.
    """
    config = config or AuditConfig()
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if y.ndim != 1 or y.shape != p.shape or len(attributes) != y.size or y.size == 0:
        raise ValueError("y, p and attributes must have the same, non-zero number of rows")
    if not np.all((y == 0) | (y == 1)) or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("labels must be 0/1 and scores probabilities in [0, 1]")
    label_arrays = {"observed": y}
    if truth is not None:
        label_arrays["truth"] = np.asarray(truth, dtype=float)
        if label_arrays["truth"].shape != y.shape:
            raise ValueError("truth must have one entry per row")
    labels = tuple(label_arrays)
    for name, rows in (("decisions", decisions), ("periods", periods)):
        if rows is not None and len(rows) != y.size:
            raise ValueError(f"{name} must have one entry per row")
    # Row order must not move a figure by an ulp: every engine hands rows in its own order.
    order = canonical_order(
        [
            p,
            *label_arrays.values(),
            *(attributes[c] for c in attributes.columns),
            None if periods is None else np.asarray(periods).astype(str),
            None
            if clusters is None or len(clusters) != y.size
            else np.asarray(clusters).astype(str),
            *(() if decisions is None else (decisions[c] for c in decisions.columns)),
        ]
    )
    y, p = y[order], p[order]
    label_arrays = {k: v[order] for k, v in label_arrays.items()}
    attributes = attributes.iloc[order]
    if decisions is not None:
        decisions = decisions.iloc[order]
    if clusters is not None and len(clusters) == y.size:  # else refused below, by name
        clusters = np.asarray(clusters)[order]
    if periods is not None:
        periods = np.asarray(periods)[order]
    human_capacity = None
    if decisions is not None:
        # The model's queue at the capacity people used: the share of all scored referrals
        # they escalated, to the whole percent, audited beside the fixed capacities.
        escalated = decisions["decision"].isin(ESCALATING).to_numpy()
        human_capacity = round(float(escalated.mean()), 2)
        if 0 < human_capacity < 1 and human_capacity not in config.capacities:
            config = replace(config, capacities=tuple(sorted((*config.capacities, human_capacity))))
    capacities = config.capacities
    thresholds = np.array([at_capacity(y, p, c)["threshold"] for c in capacities])
    flags = p[None, :] >= thresholds[:, None]

    # Tied scores share their mean rank, so row order cannot move exposure between groups.
    rank = pd.Series(-p).rank(method="average").to_numpy()
    names: list[tuple[str, ...]] = [(a,) for a in config.attributes if a in attributes]
    names += [t for t in config.intersections if all(a in attributes for a in t)]
    factorized = {a: factorize_attribute(attributes[a]) for t in names for a in t}
    overall = Grouping(OVERALL, (), np.zeros(y.size, dtype=np.int64), [OVERALL_GROUP])
    groupings = [overall, *(make_grouping(attributes, t, factorized) for t in names)]

    group_rows: list[dict[str, Any]] = []
    suppressed_rows: list[dict[str, Any]] = []
    references: dict[str, ReferenceChoice] = {}
    metric_frames: list[pd.DataFrame] = []
    reliability_frames: list[pd.DataFrame] = []
    ranking_frames: list[pd.DataFrame] = []
    exact: dict[str, dict[str, list[np.ndarray]]] = {lab: {} for lab in labels}
    rate_counts: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {
        lab: {} for lab in labels
    }
    keeps, ref_index = [], []
    offset = 0
    for grouping in groupings:
        n_g = np.bincount(grouping.codes, minlength=grouping.size)
        keep = n_g >= config.min_size
        ref, rule = config.references.choose(grouping.name, grouping.labels, n_g)
        if grouping.name != OVERALL:
            references[grouping.name] = {
                "group": grouping.labels[ref],
                "rule": rule,
                "version": config.references.version,
                "suppressed": bool(not keep[ref]),
            }
        for i, label in enumerate(grouping.labels):
            row = {"grouping": grouping.name, "group": label, "n": int(n_g[i])}
            group_rows.append({**row, "share": n_g[i] / y.size, "suppressed": not keep[i]})
            if not keep[i]:
                suppressed_rows.append({**row, "reason": f"fewer than {config.min_size} referrals"})
        for lab, values in label_arrays.items():
            metrics, counts, rel = exact_metrics(
                values, p, flags, grouping, keep, capacities, config.n_bins
            )
            for k, v in metrics.items():
                exact[lab].setdefault(k, []).append(v)
            for k, pair in counts.items():
                rate_counts[lab].setdefault(k, []).append(pair)
            reliability_frames.append(rel.assign(label=lab))
        ranking_frames.append(ranking_table(rank, y, flags, grouping, capacities))
        keeps.append(keep)
        ref_index.append(np.full(grouping.size, offset + ref))
        offset += grouping.size

    keep_all = np.concatenate(keeps)
    reference = np.concatenate(ref_index)
    group_frame = pd.DataFrame(group_rows)
    group_frame["reference"] = np.arange(len(group_frame)) == reference
    names_all = metric_names(capacities)
    point = {lab: {k: np.concatenate(exact[lab][k]) for k in names_all} for lab in labels}

    household = config.bootstrap == "household" or (
        config.bootstrap == "auto" and clusters is not None
    )
    if household and (clusters is None or len(clusters) != y.size):
        raise ValueError("a household bootstrap needs one household ID per row (clusters=)")
    replicates, cell_estimates = bootstrap_replicates(
        p, label_arrays, groupings, thresholds, config, clusters if household else None
    )
    for lab in labels:
        for name in SHIFTED:
            replicates[lab][name] += point[lab][name] - cell_estimates[lab][name]

    metric_frames, comparison_frames = [], []
    tail = (1 - config.level) / 2
    ref_ok = keep_all[reference]
    for lab in labels:
        for name in names_all:
            if lab != labels[0] and name.split("_at_")[0] in LABEL_FREE:
                continue  # the same numbers under every label: shown and judged once
            est = point[lab][name]
            rep = replicates[lab][name]
            lower, upper = nan_percentiles(rep, [tail, 1 - tail])
            frame = pd.DataFrame(
                {
                    "grouping": group_frame["grouping"],
                    "group": group_frame["group"],
                    "label": lab,
                    "metric": name,
                    "estimate": est,
                    "lower": lower,
                    "upper": upper,
                }
            )
            if name in rate_counts[lab] or name.split("_at_")[0] in QUEUE_RATES:
                num, den = (np.concatenate(x) for x in zip(*rate_counts[lab][name], strict=True))
                wl, wu = wilson_interval(num, den, config.level)
                frame["numerator"], frame["denominator"] = num, den
                frame["wilson_lower"], frame["wilson_upper"] = wl, wu
            metric_frames.append(frame[keep_all])

            test = compare(
                est, rep, reference, rate_counts[lab].get(name), config.level, tail, household
            )
            if name == "ece":
                # ECE is biased upwards in small groups (noise alone opens |score − rate|).
                small = group_frame["n"].to_numpy() < ECE_MIN_SIZE
                test["p_value"] = np.where(small, np.nan, test["p_value"])
                test["difference_lower"] = np.where(small, np.nan, test["difference_lower"])
            comparison_frames.append(
                pd.DataFrame(
                    {
                        "grouping": group_frame["grouping"],
                        "group": group_frame["group"],
                        "reference": group_frame["group"].to_numpy()[reference],
                        "label": lab,
                        "metric": name,
                        "estimate": est,
                        "reference_estimate": est[reference],
                        **test,
                        "tolerance": config.tolerances.get(name.split("_at_")[0], np.nan),
                    }
                )[keep_all & ref_ok & (np.arange(keep_all.size) != reference)]
            )
    metrics_frame = pd.concat(metric_frames, ignore_index=True)
    comparisons = pd.concat(comparison_frames, ignore_index=True)
    # One family per label and metric: "does any group differ on this metric?"
    comparisons["p_adjusted"] = comparisons.groupby(["label", "metric"])["p_value"].transform(
        lambda s: pd.Series(adjust(s.to_numpy(), config.correction), index=s.index)
    )
    comparisons["verdict"] = verdicts(
        comparisons["difference"].to_numpy(),
        comparisons["difference_lower"].to_numpy(),
        comparisons["difference_upper"].to_numpy(),
        comparisons["p_adjusted"].to_numpy(),
        comparisons["tolerance"].to_numpy(),
        config.alpha,
    )

    by_quarter = quarter_change = None
    if periods is not None:
        by_quarter, quarter_change = quarter_view(
            label_arrays,
            p,
            flags,
            thresholds,
            capacities,
            [g for g in groupings if len(g.attributes) <= 1],
            np.asarray(periods).astype(str),
            clusters if household else None,
            config,
        )
    human = human_comparisons = None
    if decisions is not None:
        human, human_comparisons = _human_audit(
            decisions,
            label_arrays.get("truth"),
            y,
            groupings,
            keep_all,
            reference,
            config,
            clusters if household else None,
        )
    return FairnessAudit(
        config=config,
        n=int(y.size),
        thresholds={
            capacity_label(c): float(t) for c, t in zip(capacities, thresholds, strict=True)
        },
        groups=group_frame,
        suppressed=pd.DataFrame(suppressed_rows, columns=["grouping", "group", "n", "reason"]),
        references=references,
        metrics=metrics_frame,
        comparisons=comparisons,
        reliability=pd.concat(reliability_frames, ignore_index=True),
        ranking=pd.concat(ranking_frames, ignore_index=True)[keep_all].reset_index(drop=True),
        human=human,
        human_comparisons=human_comparisons,
        labels=labels,
        structure=_structure(groupings, factorized),
        inference="household" if household else "independent",
        human_capacity=human_capacity,
        by_quarter=by_quarter,
        quarter_change=quarter_change,
    )


def _structure(
    groupings: list[Grouping], factorized: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """Each distinct combination of group codes (an atom) and the groupings' labels.

    Every count the audit publishes is a sum over atoms, so these are what disclosure control
    needs to find every linear relation between published cells; they never leave the
    internal document.
    """
    codes = np.stack([g.codes for g in groupings], axis=1)
    # Every grouping is a function of its attributes: one key over the attributes' codes finds
    # the atoms far faster than unique rows of the codes matrix.
    key = np.zeros(codes.shape[0], dtype=np.int64)
    radix = 1
    for values, labels in factorized.values():
        radix *= max(len(labels), 1)
        if radix >= 2**62:
            atoms = np.unique(codes, axis=0)
            break
        key = key * max(len(labels), 1) + values
    else:
        _, first = np.unique(key, return_index=True)
        atoms = np.unique(codes[first], axis=0)
    return {
        "groupings": [g.name for g in groupings],
        "attributes": [list(g.attributes) for g in groupings],
        "labels": [list(g.labels) for g in groupings],
        "atoms": atoms.tolist(),
    }


def _human_audit(
    decisions: pd.DataFrame,
    truth: np.ndarray | None,
    observed: np.ndarray,
    groupings: list[Grouping],
    keep: np.ndarray,
    reference: np.ndarray,
    config: AuditConfig,
    clusters: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Human-decision rates by group with Wilson intervals, and Newcombe comparisons.

    With ``clusters`` (households), comparisons use effective counts: each group's counts
    over its design effect (cluster-robust over binomial variance of its rate, at least 1).
    """
    indicators = human_counts(decisions.reset_index(drop=True), truth, observed)
    household = None if clusters is None else household_codes(clusters)
    rows, comparisons = [], []
    for name, (num_row, den_row) in indicators.items():
        num = np.concatenate([np.bincount(g.codes, num_row, g.size) for g in groupings])
        den = np.concatenate([np.bincount(g.codes, den_row, g.size) for g in groupings])
        effect = np.ones(num.size)
        if household is not None:
            effect = np.concatenate(
                [design_effect(num_row, den_row, g.codes, g.size, household) for g in groupings]
            )
        groups = np.concatenate([np.asarray(g.labels, dtype=object) for g in groupings])
        grouping = np.concatenate([np.full(g.size, g.name, dtype=object) for g in groupings])
        lower, upper = wilson_interval(num, den, config.level)
        rows.append(
            pd.DataFrame(
                {
                    "grouping": grouping,
                    "group": groups,
                    "metric": name,
                    "numerator": num,
                    "denominator": den,
                    "estimate": safe_div(num, den),
                    "wilson_lower": lower,
                    "wilson_upper": upper,
                }
            )[keep]
        )
        e_num, e_den = num / effect, den / effect
        d_lower, d_upper, p_value = two_proportion(
            e_num, e_den, e_num[reference], e_den[reference], config.level
        )
        est = safe_div(num, den)
        mask = keep & keep[reference] & (np.arange(num.size) != reference)
        comparisons.append(
            pd.DataFrame(
                {
                    "grouping": grouping,
                    "group": groups,
                    "reference": groups[reference],
                    "metric": name,
                    "estimate": est,
                    "reference_estimate": est[reference],
                    "difference": est - est[reference],
                    "difference_lower": d_lower,
                    "difference_upper": d_upper,
                    "p_value": np.where(np.isnan(est - est[reference]), np.nan, p_value),
                    "design_effect": effect,
                    "tolerance": HUMAN_TOLERANCE,
                }
            )[mask]
        )
    human = pd.concat(rows, ignore_index=True)
    table = pd.concat(comparisons, ignore_index=True)
    table["p_adjusted"] = table.groupby("metric")["p_value"].transform(
        lambda s: pd.Series(adjust(s.to_numpy(), config.correction), index=s.index)
    )
    table["verdict"] = verdicts(
        table["difference"].to_numpy(),
        table["difference_lower"].to_numpy(),
        table["difference_upper"].to_numpy(),
        table["p_adjusted"].to_numpy(),
        HUMAN_TOLERANCE,
        config.alpha,
    )
    return human, table
