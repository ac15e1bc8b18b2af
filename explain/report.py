"""Global explanation artifacts for a training run: importance, beeswarm, group gaps, in MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from explain.global_views import beeswarm_data, group_difference, importance
from explain.plots import beeswarm_png, group_difference_png, importance_png, importance_svg
from models.scorer import Scorer
from models.splits import TEST
from models.train import TrainResult
from triage.exports import write_csv

SAMPLE_ROWS = 20_000


def global_view_files(
    scorer: Scorer, X: np.ndarray, groups: pd.Series | None, out: Path
) -> list[Path]:
    """Write importance (CSV, PNG, SVG), a beeswarm and, given groups, the largest group gap."""
    batch = scorer.score_matrix(X, with_range=False)
    table = importance(scorer.signals, batch.contributions)
    write_csv(table, out / "importance.csv")
    (out / "importance.svg").write_text(importance_svg(table))
    paths = [
        out / "importance.csv",
        out / "importance.svg",
        importance_png(table, out / "importance.png"),
        beeswarm_png(beeswarm_data(scorer.signals, X, batch.contributions), out / "beeswarm.png"),
    ]
    if groups is not None:
        values = groups.astype(str).to_numpy()
        counts = pd.Series(values).value_counts()
        if len(counts) >= 2:
            a, b = counts.index[:2]  # the two largest groups: enough rows for a stable picture
            gap = group_difference(scorer.signals, batch.base, batch.contributions, values, a, b)
            write_csv(gap, out / f"group_difference_{groups.name}.csv")
            paths += [
                out / f"group_difference_{groups.name}.csv",
                group_difference_png(gap, out / f"group_difference_{groups.name}.png"),
            ]
    return paths


def log_global_views(run_id: str, result: TrainResult, *, tracking_uri: str) -> None:
    """Add the global views of the chosen model, on a sample of the test period, to a run."""
    from models.tracking import configure_mlflow

    configure_mlflow(tracking_uri)
    import mlflow

    data, scorer = result.data, result.scorer
    test_ids = data.part(TEST)
    rng = np.random.default_rng(result.config.seed)
    sample = test_ids[np.sort(rng.permutation(len(test_ids))[:SAMPLE_ROWS])]
    X = scorer.matrix(data.features.loc[sample])
    groups = data.protected.loc[sample, "ethnicity"] if "ethnicity" in data.protected else None
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        for path in global_view_files(scorer, X, groups, Path(tmp)):
            mlflow.log_artifact(str(path), artifact_path="explanations")
