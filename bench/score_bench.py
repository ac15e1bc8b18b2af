"""Benchmark: batch scoring with per-signal contributions, for both model families.

Fits both families on a synthetic world (not timed), then times ``Scorer.score_matrix``
(probability, 90% range, band and exact contributions) on N rows, and beside it the peer a
user would otherwise take on the same model and rows: ``mlflow.pyfunc`` prediction of the
logged model plus shap's default ``Explainer`` (timed on a sample and scaled, since it is
slow). Prints rows per second and the ratio.

    .venv/bin/python bench/score_bench.py [--referrals 50000] [--rows 200000] [--peer-rows 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from models.dataset import as_matrix, load_training_data
from models.scorer import Scorer
from models.train import FAMILIES, fit_scorer
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

TARGET_ROWS_PER_S = 200_000


def fitted_scorers(directory: Path) -> tuple[dict[str, Scorer], np.ndarray]:
    """Both families fitted as ``triage train`` fits them, and the feature matrix."""
    data = load_training_data(directory)
    scorers = {family: fit_scorer(data, family) for family in FAMILIES}
    return scorers, as_matrix(data.features)


def ours_rows_per_second(
    scorer: Scorer, X: np.ndarray, *, with_range: bool, repeats: int = 3
) -> float:
    """Median rows/s of the in-process numpy path, with contributions (and ranges if asked)."""
    scorer.score_matrix(X[:100])  # warm caches (the challenger builds its explainer once)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        batch = scorer.score_matrix(X, with_range=with_range)
        times.append(time.perf_counter() - start)
        assert np.allclose(batch.base + batch.contributions.sum(axis=1), batch.log_odds)
    return X.shape[0] / statistics.median(times)


def peer_rows_per_second(scorer: Scorer, X: np.ndarray, columns: tuple[str, ...]) -> float:
    """The peer: the logged pyfunc's predict plus shap's default Explainer, on the same rows."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    import joblib
    import mlflow
    import pandas as pd
    import shap

    from models.tracking import PYFUNC_CODE

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scorer.joblib"
        joblib.dump(scorer, path)
        mlflow.pyfunc.save_model(
            Path(tmp) / "model", python_model=str(PYFUNC_CODE), artifacts={"scorer": str(path)}
        )
        model = mlflow.pyfunc.load_model(str(Path(tmp) / "model"))
        frame = pd.DataFrame(X, columns=list(columns))
        if scorer.family == "challenger":
            explainer = shap.Explainer(scorer.model.model_)  # picks TreeExplainer
        else:
            background = shap.maskers.Independent(np.nan_to_num(X[:100], nan=-1.0), max_samples=100)

            def log_odds(rows: np.ndarray) -> np.ndarray:
                return scorer.model.log_odds(np.where(rows == -1.0, np.nan, rows))

            explainer = shap.Explainer(log_odds, background)  # model-agnostic default
        start = time.perf_counter()
        model.predict(frame)
        explainer(np.nan_to_num(X, nan=-1.0) if scorer.family == "scorecard" else X)
        return X.shape[0] / (time.perf_counter() - start)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--peer-rows", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        write_extract(generate_world(WorldParams(n_referrals=args.referrals)), Path(tmp))
        scorers, X_all = fitted_scorers(Path(tmp))
    rows = X_all[np.arange(args.rows) % X_all.shape[0]]
    for family, scorer in scorers.items():
        plain = ours_rows_per_second(scorer, rows, with_range=False)
        ranged = ours_rows_per_second(scorer, rows, with_range=True)
        peer = peer_rows_per_second(scorer, rows[: args.peer_rows], scorer.signals)
        verdict = "within target" if plain >= TARGET_ROWS_PER_S else "OUTSIDE TARGET"
        print(
            f"{family}: ours {plain:,.0f} rows/s with contributions and band "
            f"({ranged:,.0f} with the bootstrap range too) on {args.rows:,} rows; peer pyfunc + "
            f"shap.Explainer {peer:,.0f} rows/s on {args.peer_rows:,} rows; ratio "
            f"{plain / peer:,.1f}x; {verdict} (target {TARGET_ROWS_PER_S:,} rows/s)"
        )


if __name__ == "__main__":
    main()
