"""Pairwise precision and recall of a clustering against the true persons."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class LinkageScores:
    """Pairwise scores: a pair is two records; it is predicted when they share a cluster."""

    records: int
    persons: int
    clusters: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        """Share of predicted pairs that are the same person (1.0 when none is predicted)."""
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of same-person pairs that share a cluster (1.0 when there are none)."""
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(sizes: pd.Series) -> int:
    n = sizes.astype("int64")
    return int((n * (n - 1) // 2).sum())


def pairwise_scores(clusters: pd.DataFrame, truth: pd.DataFrame) -> LinkageScores:
    """Score ``clusters`` (record_id, cluster_id) against ``truth`` (record_id, person_id)."""
    joined = clusters[["record_id", "cluster_id"]].merge(
        truth[["record_id", "person_id"]], on="record_id", how="inner", validate="one_to_one"
    )
    return LinkageScores(
        records=len(joined),
        persons=int(joined["person_id"].nunique()),
        clusters=int(joined["cluster_id"].nunique()),
        true_pairs=_pairs(joined.groupby("person_id").size()),
        predicted_pairs=_pairs(joined.groupby("cluster_id").size()),
        correct_pairs=_pairs(joined.groupby(["cluster_id", "person_id"]).size()),
    )
