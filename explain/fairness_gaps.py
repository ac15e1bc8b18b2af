"""The fairness audit with its explanations: why gaps exist, and the audit of a training run.

Lives in ``explain`` because it needs the group-difference decomposition, and ``models``
must not import ``explain``; the metrics, intervals, verdicts, the document and the report
stay in the ``models.fairness`` package, which takes the gap explanations as plain data.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explain.global_views import group_difference
from explain.plots import group_difference_png
from models.dataset import OUTCOMES
from models.fairness import (
    SCHEMA_VERSION,
    AuditConfig,
    FairnessAudit,
    audit_attributes,
    audit_scored,
    records,
    to_document,
    write_report,
)
from models.scorer import Scorer
from models.splits import TEST
from models.train import TrainResult


def gap_explanations(
    scorer: Scorer,
    X: np.ndarray,
    attributes: pd.DataFrame,
    result: FairnessAudit,
    *,
    limit: int = 6,
) -> list[dict[str, Any]]:
    """Which signals drive the mean-score gap of the groups furthest from their reference."""
    batch = scorer.score_matrix(X, with_range=False)
    return gaps_from_contributions(
        scorer.signals, batch.base, batch.contributions, attributes, result, limit=limit
    )


def gaps_from_contributions(
    signals: tuple[str, ...],
    base: np.ndarray,
    contributions: np.ndarray,
    attributes: pd.DataFrame,
    result: FairnessAudit,
    *,
    limit: int = 6,
) -> list[dict[str, Any]]:
    """``gap_explanations`` from contributions already computed (on Spark, say), any row order."""
    # Means of floats depend on the order summed: one canonical order (by the contributions
    # themselves) makes every engine's rows, in whatever order they came, give the same bits.
    order = np.lexsort(np.column_stack([base, contributions]).T)
    base, contributions = base[order], contributions[order]
    attributes = attributes.iloc[order]
    table = result.comparisons
    candidates = table[
        (table["metric"] == "mean_score")
        & (table["label"] == "observed")
        & table["grouping"].isin([g for g in result.config.attributes])
    ]
    candidates = candidates.reindex(
        candidates["difference"].abs().sort_values(ascending=False).index
    )
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in records(candidates.head(limit)) or []:
            groups = attributes[row["grouping"]].astype(str).to_numpy()
            gap = group_difference(
                signals,
                base,
                contributions,
                groups,
                row["group"],
                row["reference"],
            )
            top = gap.head(3)
            drivers = ", ".join(
                f"{s} ({d:+.2f})" for s, d in zip(top["signal"], top["difference"], strict=True)
            )
            path = group_difference_png(gap, Path(tmp) / "gap.png")
            image = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
            out.append(
                {
                    "grouping": row["grouping"],
                    "group_a": row["group"],
                    "group_b": row["reference"],
                    "log_odds_gap": gap.attrs["log_odds_gap"],
                    "signals": records(gap.head(10)),
                    "sentence": (
                        f"Mean log-odds differ by {gap.attrs['log_odds_gap']:+.2f} between "
                        f"{row['group']} and {row['reference']}; the signals that account for "
                        f"most of it: {drivers} (difference in mean contribution, log-odds)."
                    ),
                    "image": image,
                }
            )
    return out


def audit_training_run(
    result: TrainResult, *, directory: Path | None, config: AuditConfig | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The audit document of a training run's test period, and its gap plots for the HTML."""
    data, scorer = result.data, result.scorer
    ids = data.part(TEST)
    fairness = audit_scored(
        data, ids, result.test_probability, scorer=scorer, directory=directory, config=config
    )
    X = scorer.matrix(data.features.loc[ids])
    gaps = gap_explanations(scorer, X, audit_attributes(data.protected.loc[ids]), fairness)
    meta = {
        "outcome": data.outcome,
        "outcome_words": OUTCOMES.get(data.outcome, data.outcome),
        "model_version": scorer.version,
        "family": scorer.family,
        "period": "test",
        "data_fingerprint": data.fingerprint,
        "synthetic": data.truth is not None,
    }
    return to_document(fairness, meta=meta, gaps=gaps), gaps


def log_fairness_audit(
    run_id: str,
    result: TrainResult,
    *,
    tracking_uri: str,
    directory: Path | None = None,
    config: AuditConfig | None = None,
) -> dict[str, Any]:
    """Add the fairness audit (JSON, HTML, verdict counts) of a training run to that run."""
    from models.tracking import configure_mlflow

    configure_mlflow(tracking_uri)
    import mlflow

    document, gaps = audit_training_run(result, directory=directory, config=config)
    document["meta"]["run_id"] = run_id
    verdicts = document["summary"]["verdicts"].get("observed", {})
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        for path in write_report(document, Path(tmp), gaps):
            mlflow.log_artifact(str(path), artifact_path="fairness")
        mlflow.log_metrics(
            {f"fairness_{k.replace(' ', '_')}": float(v) for k, v in verdicts.items()}
        )
        mlflow.set_tag("fairness_schema_version", SCHEMA_VERSION)
    return document
