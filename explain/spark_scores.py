"""Scores with their top reasons on Spark: the champion's scorer in a pandas UDF.

Each partition of the Spark features (``features.sql.spark.spark_features``) goes through
``score_features``, the very function ``triage score`` uses, so probabilities, bands, exact
contributions and reasons are the numpy path's. The scorer travels as one broadcast.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    shared = features.sparkSession.sparkContext.broadcast(scorer)

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model: Scorer = shared.value
        for batch in batches:
            if len(batch):
                yield score_features(batch.set_index("referral_id"), model, top=top)

    return features.mapInPandas(score_batches, schema=scores_schema(scorer, top))
