"""Scores with their top reasons for every referral of an extract (``triage score``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from explain.reasons import top_reasons
from features.batch import features_of
from models.scorer import Scorer
from triage.exports import write_csv
from triage.store.extract import read_extract


def score_extract(directory: Path, scorer: Scorer, *, top: int = 5) -> pd.DataFrame:
    """One row per referral: probability, 90% range, band and the top reasons in words."""
    features = features_of(read_extract(Path(directory), with_truth=False))
    return score_features(features, scorer, top=top)


def score_features(features: pd.DataFrame, scorer: Scorer, *, top: int = 5) -> pd.DataFrame:
    """Score a feature table indexed by referral_id (the rows of ``score_extract``'s output)."""
    X = scorer.matrix(features)
    batch = scorer.score_matrix(X)
    table = top_reasons(scorer.signals, X, batch.contributions, top=top)
    sentences = table.sentences()
    out = pd.DataFrame(
        {
            "referral_id": features.index.astype(str),
            "probability": batch.probability,
            "probability_low": batch.low,
            "probability_high": batch.high,
            "band": batch.band.astype(str),
            "model_version": scorer.version,
            "outcome": scorer.outcome_words,
        }
    )
    for k in range(table.order.shape[1]):
        out[f"reason_{k + 1}"] = sentences[:, k]
        out[f"reason_{k + 1}_signal"] = [scorer.signals[j] for j in table.order[:, k]]
        out[f"reason_{k + 1}_contribution"] = table.contributions[:, k]
    return out


def write_scores(scores: pd.DataFrame, path: Path) -> Path:
    """Write as Parquet, or CSV when the name ends in ``.csv`` (safe to open in a spreadsheet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        write_csv(scores, path)
    else:
        scores.to_parquet(path, index=False)
    return path
