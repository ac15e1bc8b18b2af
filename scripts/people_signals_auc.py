"""What the signals of who lives with the child add: test AUC against the latent truth.

Trains twice on one extract with the project's defaults, once with every model input and once
without the signals of who lives with the child (the catalogue's membership and household-change
signals), and reports for each on the test period: AUC against the observed label and against
the synthetic world's latent truth, and, for truly harmed children living with an unrelated
adult, the share whose referral reaches the top 20% of the queue.

    python scripts/people_signals_auc.py var/extract [--capacity 0.2]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from features.catalogue import PEOPLE_SIGNAL_NAMES
from models.evaluation import auc
from models.splits import TEST
from models.train import TrainConfig, TrainResult, train

PEOPLE_SIGNALS = PEOPLE_SIGNAL_NAMES


def measure(result: TrainResult, capacity: float, unrelated: np.ndarray) -> dict[str, float]:
    """AUCs and the reach of harmed children living with an unrelated adult."""
    data = result.data
    test_ids = data.part(TEST)
    p = np.asarray(result.test_probability)
    assert data.truth is not None, "the extract has no truth table (not a synthetic world)"
    truth = data.truth.loc[test_ids].to_numpy(dtype=bool)
    observed = data.label.loc[test_ids].to_numpy(dtype=bool)
    selected = p >= np.quantile(p, 1 - capacity)
    harmed_unrelated = truth & unrelated
    return {
        "chosen_family": result.chosen,
        "signals": len(result.scorer.signals),
        "auc_observed": auc(observed.astype(float), p),
        "auc_truth": auc(truth.astype(float), p),
        "reach_harmed_with_unrelated_adult": float(selected[harmed_unrelated].mean()),
        "reach_harmed_others": float(selected[truth & ~unrelated].mean()),
    }


def main() -> None:
    """Train with and without the people signals and print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extract", type=Path)
    parser.add_argument("--capacity", type=float, default=0.2)
    args = parser.parse_args()
    started = time.perf_counter()
    full = train(args.extract, TrainConfig())
    test_ids = full.data.part(TEST)
    unrelated = full.data.features.loc[test_ids, "unrelated_adult_in_household"].to_numpy() > 0
    without = train(args.extract, replace(TrainConfig(), without=PEOPLE_SIGNALS))
    report = {
        "extract": str(args.extract),
        "test_referrals": len(test_ids),
        "test_referrals_with_unrelated_adult": int(unrelated.sum()),
        "people_signals": list(PEOPLE_SIGNALS),
        "with_people_signals": measure(full, args.capacity, unrelated),
        "without_people_signals": measure(without, args.capacity, unrelated),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
