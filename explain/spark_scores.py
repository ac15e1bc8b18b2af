"""Scores with their top reasons on Spark: the champion's scorer in a pandas UDF.

Each partition of the Spark features (``features.sql.spark.spark_features``) goes through
``score_features``, the very function ``triage score`` uses, so probabilities, bands, exact
contributions and reasons are the numpy path's. The scorer travels as one broadcast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from explain.batch_scores import score_features
from models.scorer import Scorer


def scores_schema(scorer: Scorer, top: int) -> str:
    """The output's Spark DDL schema: ``score_features``' columns and types."""
    columns = [
        "referral_id string",
        "probability double",
        "probability_low double",
        "probability_high double",
        "band string",
        "model_version string",
        "outcome string",
    ]
    for k in range(1, min(top, len(scorer.signals)) + 1):
        columns += [
            f"reason_{k} string",
            f"reason_{k}_signal string",
            f"reason_{k}_contribution double",
        ]
    return ", ".join(columns)


def score_on_spark(features: Any, scorer: Scorer, *, top: int = 5) -> Any:
    """A Spark DataFrame of scores and top reasons for a Spark DataFrame of features."""

    def score(batch: pd.DataFrame, model: Scorer) -> pd.DataFrame:
        return score_features(batch.set_index("referral_id"), model, top=top)

    return _map_scorer(features, scorer, score, scores_schema(scorer, top))


CONTRIBUTION = "contribution_"
"""Prefix of each signal's contribution column in ``contributions_on_spark``'s output."""


def contributions_on_spark(features: Any, scorer: Scorer, *, keep: tuple[str, ...] = ()) -> Any:
    """Per referral: probability, base and every signal's exact contribution (log-odds).

    ``keep`` names feature columns passed through beside them (doubles), so that a caller
    need not compute the features twice.
    """

    def score(batch: pd.DataFrame, model: Scorer) -> pd.DataFrame:
        scored = model.score_matrix(model.matrix(batch), with_range=False)
        out = pd.DataFrame(
            {
                "referral_id": batch["referral_id"].astype(str).to_numpy(),
                "probability": scored.probability,
                "base": scored.base,
            }
        )
        for j, signal in enumerate(model.signals):
            out[CONTRIBUTION + signal] = scored.contributions[:, j]
        for name in keep:
            out[name] = batch[name].to_numpy(dtype="float64")
        return out

    columns = ["referral_id string", "probability double", "base double"]
    columns += [f"{CONTRIBUTION}{s} double" for s in scorer.signals]
    columns += [f"{name} double" for name in keep]
    return _map_scorer(features, scorer, score, ", ".join(columns))


def _map_scorer(
    features: Any,
    scorer: Scorer,
    score: Callable[[pd.DataFrame, Scorer], pd.DataFrame],
    schema: str,
) -> Any:
    """``score`` over every batch of every partition, the scorer travelling as one broadcast."""
    shared = features.sparkSession.sparkContext.broadcast(scorer)

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model: Scorer = shared.value
        for batch in batches:
            if len(batch):
                yield score(batch, model)

    return features.mapInPandas(score_batches, schema=schema)
