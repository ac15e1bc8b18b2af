"""Benchmark: the fairness audit with bootstrap intervals, against fairlearn's MetricFrame.

Scored referrals are drawn directly (scores, outcomes and four attributes with realistic
shares), since the audit's cost depends on rows and groups, not on how the scores were made.
Timed, in one run:

- ours: the full audit (four attributes and their six pairwise intersections; every metric at
  capacities 5, 10, 20, 30 and 50%, AUC, calibration within groups; comparisons, corrections
  and verdicts) with 1,000 bootstrap replicates, cluster-aware (household; IDs drawn at the
  demo world's ratio of households to referrals) and independent (stratified);
- ours on the peer's task alone: one intersection, the whole metric set, 1,000 replicates;
- fairlearn: ``MetricFrame`` with ``n_boot`` replicates (default 20) on one intersection
  (ethnicity × deprivation band) and three rates at the 10% capacity (selection, FPR, FNR),
  the metrics both compute; and the ratio per replicate.

    .venv/bin/python bench/fairness_bench.py [--rows 500000] [--boot 1000] [--peer-boot 20]
        [--inference both|independent|household]   (--peer-boot 0 skips the peer)
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import combinations

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)

from models.fairness import AuditConfig, audit

TARGET_S = 15.0
PROTECTED = ("ethnicity", "sex", "disability", "deprivation_band")


def households(n: int, seed: int = 1) -> np.ndarray:
    """Household IDs at the demo world's ratio (6,643 households for 8,647 referrals)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, max(1, round(n * 6643 / 8647)), n)


def scored_referrals(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Scores, outcomes and four protected attributes for n referrals."""
    rng = np.random.default_rng(seed)
    attributes = pd.DataFrame(
        {
            "ethnicity": rng.choice(
                ["white", "asian", "black", "mixed", "other", "not_stated"],
                n,
                p=[0.72, 0.08, 0.06, 0.07, 0.03, 0.04],
            ),
            "sex": rng.choice(["female", "male", "unknown"], n, p=[0.485, 0.495, 0.02]),
            "disability": rng.choice(["not disabled", "disabled"], n, p=[0.88, 0.12]),
            "deprivation_band": rng.choice(
                ["1-2 (most deprived)", "3-4", "5-6", "7-8", "9-10 (least deprived)"],
                n,
                p=[0.3, 0.25, 0.2, 0.15, 0.1],
            ),
        }
    )
    deprived = (attributes["deprivation_band"] == "1-2 (most deprived)").to_numpy()
    log_odds = rng.normal(-2.2, 1.0, n) + 0.3 * deprived
    p = np.round(1 / (1 + np.exp(-log_odds)), 4)
    y = (rng.random(n) < p).astype(float)
    return y, p, attributes


def _median_time(run, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    """Run the benchmark and print figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--peer-boot", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--inference",
        choices=("independent", "household", "both"),
        default="both",
        help="independent (stratified bootstrap) or household (cluster-aware, the default).",
    )
    args = parser.parse_args()

    y, p, attributes = scored_referrals(args.rows)
    clusters = households(args.rows)
    modes = ("independent", "household") if args.inference == "both" else (args.inference,)
    timings: dict[str, tuple[float, list[float]]] = {}
    for mode in modes:
        bootstrap = "household" if mode == "household" else "stratified"
        config = AuditConfig(
            attributes=PROTECTED,
            intersections=tuple(combinations(PROTECTED, 2)),
            n_boot=args.boot,
            bootstrap=bootstrap,
        )
        timings[mode] = _median_time(
            lambda config=config: audit(y, p, attributes, clusters=clusters, config=config),
            args.repeats,
        )
        median, each = timings[mode]
        print(
            f"ours, full audit, {mode} inference, {args.boot} replicates: median {median:.2f} s "
            f"({', '.join(f'{t:.2f}' for t in each)}); target {TARGET_S:.0f} s: "
            + ("met" if median <= TARGET_S else "NOT met"),
            flush=True,
        )
    if args.peer_boot <= 0:
        return
    full = AuditConfig(
        attributes=PROTECTED,
        intersections=tuple(combinations(PROTECTED, 2)),
        n_boot=args.boot,
        bootstrap="stratified",
    )
    one = AuditConfig(
        attributes=(),
        intersections=(("ethnicity", "deprivation_band"),),
        n_boot=args.boot,
        bootstrap="stratified",
    )
    result = audit(y, p, attributes, config=full)
    groups = len(result.groups)
    ours, _ = timings.get("independent") or _median_time(
        lambda: audit(y, p, attributes, config=full), args.repeats
    )
    ours_one, _ = _median_time(lambda: audit(y, p, attributes, config=one), args.repeats)

    flagged = (p >= result.thresholds[10]).astype(int)
    sensitive = attributes[["ethnicity", "deprivation_band"]]
    metrics = {"selection": selection_rate, "fpr": false_positive_rate, "fnr": false_negative_rate}

    def peer() -> MetricFrame:
        return MetricFrame(
            metrics=metrics, y_true=y, y_pred=flagged, sensitive_features=sensitive,
            n_boot=args.peer_boot, ci_quantiles=[0.025, 0.975], random_state=0,
        )  # fmt: skip

    peer_s, _ = _median_time(peer, 1)
    check = MetricFrame(metrics=metrics, y_true=y, y_pred=flagged, sensitive_features=sensitive)
    ours_rates = result.metrics.query(
        "grouping == 'ethnicity × deprivation_band' and label == 'observed'"
        " and metric == 'selection_rate_at_10'"
    ).set_index("group")["estimate"]
    peer_rates = check.by_group["selection"]
    peer_rates.index = [" × ".join(i) for i in peer_rates.index]
    gap = float(np.max(np.abs(ours_rates - peer_rates.loc[ours_rates.index])))

    per_ours = ours / args.boot
    per_ours_one = ours_one / args.boot
    per_peer = peer_s / args.peer_boot
    print(f"rows {args.rows:,}; {groups} groups (4 attributes + 6 pairwise intersections)")
    print(f"ours, one intersection, all metrics, {args.boot} replicates: {ours_one:.2f} s")
    print(
        f"fairlearn MetricFrame, one intersection, 3 rates, {args.peer_boot} replicates: "
        f"{peer_s:.2f} s ({per_peer:.3f} s per replicate)"
    )
    print(f"per replicate: ours full {1000 * per_ours:.2f} ms, one intersection "
          f"{1000 * per_ours_one:.2f} ms; fairlearn {1000 * per_peer:.0f} ms")  # fmt: skip
    print(
        f"ratio per replicate, fairlearn / ours: {per_peer / per_ours:,.0f}× (full audit), "
        f"{per_peer / per_ours_one:,.0f}× (same intersection); goal ≥ 100×"
    )
    print(f"selection rates equal to fairlearn's: max difference {gap:.1e}")


if __name__ == "__main__":
    main()
