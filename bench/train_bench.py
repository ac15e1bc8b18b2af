"""Benchmark: ``triage train`` end to end (features, both families, evaluation, MLflow, gates).

Writes a synthetic extract (not timed), then runs ``triage train --data DIR`` in a fresh
process against a temporary MLflow store and times it, with the process's peak RSS. Beside
it, the same run's peer: one default scikit-learn ``HistGradientBoostingClassifier`` fitted
on the same training matrix (no calibration, bootstraps, evaluation or tracking), to show
what the honest pipeline costs over the bare fit.

    .venv/bin/python bench/train_bench.py [--referrals 50000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from models.dataset import as_matrix, load_training_data
from models.splits import TRAIN
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

TARGETS_S = {50_000: 120.0, 1_000_000: 600.0}
"""The demo world (50,000 referrals, the default) and a million referrals."""


def timed_train(extract: Path, workdir: Path) -> tuple[float, float, str]:
    """Seconds and peak RSS (GB) of ``triage train`` in a fresh process, and its last lines."""
    env = dict(os.environ)
    env["TRIAGE_MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
    env["TRIAGE_DATABASE_URL"] = f"sqlite:///{workdir}/triage.db"
    env["TRIAGE_VAR_DIR"] = str(workdir)
    triage = Path(sys.executable).with_name("triage")
    start = time.perf_counter()
    process = psutil.Popen(
        [str(triage), "train", "--data", str(extract)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    output = process.stdout.read()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"triage train failed:\n{output}")
    return seconds, peak / 1e9, "\n".join(output.strip().splitlines()[-16:])


def peer_seconds(extract: Path) -> float:
    """One default HistGradientBoostingClassifier on the same training rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    data = load_training_data(extract)
    X = as_matrix(data.features.loc[data.part(TRAIN)])
    y = data.label.loc[data.part(TRAIN)].to_numpy(dtype=np.int64)
    start = time.perf_counter()
    HistGradientBoostingClassifier(random_state=0).fit(X, y)
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        extract = Path(tmp) / "extract"
        write_extract(generate_world(WorldParams(n_referrals=args.referrals)), extract)
        runs = []
        for i in range(args.repeats):
            workdir = Path(tmp) / f"run{i}"
            workdir.mkdir()
            runs.append(timed_train(extract, workdir))
        peer = peer_seconds(extract)
    seconds = statistics.median(r[0] for r in runs)
    peak = max(r[1] for r in runs)
    target = TARGETS_S.get(args.referrals)
    verdict = (
        "" if target is None
        else f"; {'within' if seconds <= target else 'OUTSIDE'} target {target:g} s"
    )  # fmt: skip
    print(runs[-1][2])
    print(
        f"triage train on {args.referrals:,} referrals: median {seconds:.1f} s "
        f"({', '.join(f'{r[0]:.1f}' for r in runs)}), peak RSS {peak:.2f} GB{verdict}"
    )
    print(
        f"peer: one default HistGradientBoostingClassifier fit on the same training rows "
        f"{peer:.1f} s; ratio {seconds / peer:.1f}x for both families, calibration, "
        "bootstrap ranges, evaluation with intervals, plots, model card and registry"
    )


if __name__ == "__main__":
    main()
