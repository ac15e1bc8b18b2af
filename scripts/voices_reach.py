"""Whose voice counts: do truly harmed children referred by relatives reach the top of the queue?

Trains on an extract with the project's defaults, then on the test period reports, for truly
harmed children (the synthetic world's latent truth), the share whose referral reaches the
top 20% of the queue, for referrals from relatives or family friends against all others, with
household-bootstrap 95% intervals; test AUC against the observed label and the truth; and how
often a referrer signal is among a referral's five strongest reasons lowering priority.

    python scripts/voices_reach.py var/extract [--capacity 0.2] [--boot 1000] [--outcome ...]

Written to run on older checkouts too (it reads the extract, not newer helpers), so the same
command measures before and after a change.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.dataset import as_matrix
from models.evaluation import auc
from models.splits import TEST
from models.train import TrainConfig, train

FAMILY_OR_FRIEND = ("relative", "family_friend")
REFERRER_SIGNALS = ("referrer_professional", "referrer_relative_friend", "referrer_anonymous")


def reach(selected: np.ndarray, harmed: np.ndarray, weights: np.ndarray) -> float:
    """Weighted share of harmed referrals that are selected."""
    return float((weights * selected * harmed).sum() / (weights * harmed).sum())


def bootstrap(
    selected: np.ndarray,
    harmed: np.ndarray,
    voice: np.ndarray,
    households: np.ndarray,
    n_boot: int,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95% household-bootstrap intervals of each group's reach and of their difference."""
    codes, inverse = np.unique(households, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = {"family_or_friend": [], "others": [], "difference": []}
    for _ in range(n_boot):
        weights = np.bincount(rng.integers(0, codes.size, codes.size), minlength=codes.size)
        w = weights[inverse].astype(float)
        a = reach(selected, harmed & voice, w)
        b = reach(selected, harmed & ~voice, w)
        draws["family_or_friend"].append(a)
        draws["others"].append(b)
        draws["difference"].append(a - b)
    return {k: [float(q) for q in np.quantile(v, [0.025, 0.975])] for k, v in draws.items()}


def lowering_reasons(result, test_ids: pd.Index, top: int = 5) -> dict[str, dict[str, float]]:
    """Per referrer signal: how often it is a top-``top`` reason and lowers priority."""
    scorer = result.scorer
    X = as_matrix(result.data.features.loc[test_ids])
    contributions = np.asarray(scorer.score_matrix(X, with_range=False).contributions)
    order = np.argsort(-np.abs(contributions), axis=1)[:, :top]
    out = {}
    for name in REFERRER_SIGNALS:
        if name not in scorer.signals:
            out[name] = {"top_reason_lowering": 0, "not_an_input": True}
            continue
        j = list(scorer.signals).index(name)
        in_top = (order == j).any(axis=1)
        lowers = in_top & (contributions[:, j] < 0)
        out[name] = {
            "top_reason_lowering": int(lowers.sum()),
            "mean_when_lowering": float(contributions[lowers, j].mean()) if lowers.any() else 0.0,
            "min_contribution": float(contributions[:, j].min()),
        }
    return out


def main() -> None:
    """Train on the extract and print the measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extract", type=Path)
    parser.add_argument("--capacity", type=float, default=0.2)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--outcome", default=None, help="Observed outcome to train on.")
    args = parser.parse_args()
    started = time.perf_counter()
    config = TrainConfig() if args.outcome is None else TrainConfig(outcome=args.outcome)
    result = train(args.extract, config)
    data = result.data
    test_ids = data.part(TEST)
    p = np.asarray(result.test_probability)
    selected = p >= np.quantile(p, 1 - args.capacity)
    truth = data.truth.loc[test_ids].to_numpy(dtype=bool)
    observed = data.label.loc[test_ids].to_numpy(dtype=bool)
    referrals = pd.read_parquet(
        args.extract / "referrals.parquet", columns=["referral_id", "referrer_relationship"]
    ).set_index("referral_id")
    voice = referrals["referrer_relationship"].reindex(test_ids).isin(FAMILY_OR_FRIEND)
    voice = voice.to_numpy(dtype=bool)
    households = data.household_id.loc[test_ids].to_numpy()
    ones = np.ones(len(test_ids))
    report = {
        "extract": str(args.extract),
        "referrals_labelled": len(data.label),
        "test_referrals": len(test_ids),
        "outcome": data.outcome,
        "chosen": result.chosen,
        "auc_observed": auc(observed.astype(float), p),
        "auc_truth": auc(truth.astype(float), p),
        "capacity": args.capacity,
        "harmed_family_or_friend": int((truth & voice).sum()),
        "harmed_others": int((truth & ~voice).sum()),
        "reach_family_or_friend": reach(selected, truth & voice, ones),
        "reach_others": reach(selected, truth & ~voice, ones),
        "intervals": bootstrap(selected, truth, voice, households, args.boot),
        "lowering_reasons": lowering_reasons(result, test_ids),
        "seconds": round(time.perf_counter() - started, 1),
    }
    report["reach_difference"] = report["reach_family_or_friend"] - report["reach_others"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
