"""The fairness audit on Spark: features, scores and the audit's inputs joined by Spark, then
counted, so that the driver runs the very statistics of ``triage audit`` on the counts.

Spark computes the compiled catalogue (``features.sql.spark``), the champion's probability
and exact contributions (``explain.spark_scores``), and joins them to the referral-level
tables. It then groups the audited referrals by every input the statistics read (the
child's attributes and age, the referrer, the household, the quarter, the probability, the
labels and the decisions) with a count. The driver collects those cells, expands each into
its count of rows and derives the audit groups with the training table's own helpers
(``models.dataset.audit_groups``, ``outcome_label``), then runs ``models.fairness.audit``,
which sorts rows into one canonical order: the document equals the in-memory engines' to
the last bit.

The scores are continuous and the household is part of every cell, so cells are nearly as
many as referrals: the count saves little. The gap explanations need each group's mean
contributions; Spark's sums would round differently from numpy's, so the driver collects the
contributions of the audited referrals (one row each, the signals and base as doubles) and
explains the gaps as the in-memory path does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explain.fairness_gaps import gaps_from_contributions
from explain.spark_scores import CONTRIBUTION, contributions_on_spark
from features.sql.spark import is_uri, missing_path, spark_features
from models.dataset import (
    CHILD_COLUMNS,
    REFERRAL_COLUMNS,
    audit_groups,
    outcome_columns,
    outcome_label,
)
from models.fairness import AuditConfig, FairnessAudit, audit, audit_attributes
from models.scorer import Scorer
from models.splits import SplitSpec, period_starts

COUNT = "cell_count"
AGE = "child_age_months"


@dataclass
class SparkAudit:
    """The audit computed from Spark's counts, its gap explanations, and the sizes involved."""

    result: FairnessAudit
    gaps: list[dict[str, Any]]
    cells: int
    """Distinct combinations of the audit's inputs Spark counted (rows collected)."""
    synthetic: bool


def _table(spark: Any, location: str, name: str) -> Any:
    """One Parquet table of the extract as a Spark DataFrame (Spark refuses a missing one)."""
    return spark.read.parquet(f"{location}/{name}.parquet")


def _optional_table(spark: Any, location: str, name: str) -> Any | None:
    """An optional table (truth, decisions); None when the extract has none."""
    if not is_uri(location) and not Path(f"{location}/{name}.parquet").exists():
        return None
    try:
        return _table(spark, location, name)
    except Exception as exc:
        # Only a missing path means "no such table"; a refused read must not drop a section.
        if missing_path(exc):
            return None
        raise


def audit_rows(
    spark: Any,
    extract: str,
    scorer: Scorer,
    *,
    period: str = "test",
    spec: SplitSpec | None = None,
) -> tuple[Any, list[str], bool]:
    """Spark's audited referrals (scores joined to their inputs), the cell keys, truth known."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    location = str(extract).rstrip("/")
    outcomes = _table(spark, location, "outcomes")
    label_columns = outcome_columns(scorer.outcome)
    wanted = [
        c for c in dict.fromkeys([*label_columns, "investigated_12m"]) if c in outcomes.columns
    ]
    referrals = _table(spark, location, "referrals").select(*REFERRAL_COLUMNS)
    labelled = referrals.join(outcomes.select("referral_id", *wanted), "referral_id")
    if period == "test":
        # The split's own rule on the labelled referrals' receipt times (one column collected).
        received = labelled.select("received_at").toPandas()["received_at"]
        _, test_start = period_starts(received, spec)
        start = pd.Timestamp(test_start)
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        labelled = labelled.where(F.col("received_at") >= F.lit(start.to_pydatetime()))
    features = spark_features(spark, location).join(
        labelled.select("referral_id"), "referral_id", "left_semi"
    )
    rows = contributions_on_spark(features, scorer, keep=(AGE,)).join(labelled, "referral_id")
    children = _table(spark, location, "children").select(*CHILD_COLUMNS)
    rows = rows.join(children, "child_id", "left")
    truth = _optional_table(spark, location, "truth")
    if truth is not None:
        rows = rows.join(truth.select("referral_id", "harm_12m"), "referral_id", "left")
    decisions = _optional_table(spark, location, "decisions")
    decision_columns: list[str] = []
    if decisions is not None:
        # The last decision recorded per referral, in file order, as load_decisions keeps it.
        decision_columns = [
            "decision",
            *(["agreement"] if "agreement" in decisions.columns else []),
        ]
        latest = Window.partitionBy("referral_id").orderBy(F.col("_order").desc())
        last = (
            decisions.withColumn("_order", F.monotonically_increasing_id())
            .withColumn("_rank", F.row_number().over(latest))
            .where(F.col("_rank") == 1)
            .select("referral_id", *decision_columns)
        )
        rows = rows.join(last, "referral_id", "left")
    quarter = F.concat(
        F.year("received_at").cast("string"), F.lit("-Q"), F.quarter("received_at").cast("string")
    )
    rows = rows.withColumn("quarter", quarter)
    keys = [
        *CHILD_COLUMNS[1:],
        AGE,
        "referrer_type",
        "referrer_relationship",
        "household_id",
        "quarter",
        "probability",
        *label_columns,
        *(["harm_12m"] if truth is not None else []),
        *decision_columns,
        *(["investigated_12m"] if decisions is not None and "investigated_12m" in wanted else []),
    ]
    return rows, keys, truth is not None


def _attributes(frame: pd.DataFrame) -> pd.DataFrame:
    """Audit attributes of collected rows, by the training table's own helpers."""
    return audit_attributes(audit_groups(frame, frame[AGE], frame))


def _decisions(frame: pd.DataFrame, scorer: Scorer) -> pd.DataFrame | None:
    """The decisions of collected rows, with the model's band, as ``load_decisions`` gives."""
    if "decision" not in frame:
        return None
    decisions = frame[["decision", *(["agreement"] if "agreement" in frame else [])]].copy()
    if "investigated_12m" in frame:
        decisions["investigated"] = frame["investigated_12m"].fillna(False).astype(bool)
    decisions["band"] = scorer.bands.assign(frame["probability"].to_numpy(dtype=float))
    return decisions


def audit_on_spark(
    spark: Any,
    extract: str,
    scorer: Scorer,
    *,
    period: str = "test",
    config: AuditConfig | None = None,
    spec: SplitSpec | None = None,
) -> SparkAudit:
    """The champion's fairness audit of an extract with Spark doing the rows' work."""
    from pyspark import StorageLevel

    rows, keys, synthetic = audit_rows(spark, extract, scorer, period=period, spec=spec)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counted = rows.groupBy(*keys).count().withColumnRenamed("count", COUNT)
        cells = counted.toPandas()
        if cells.empty:
            raise ValueError("no labelled referrals to audit in this period")
        expanded = cells.loc[cells.index.repeat(cells[COUNT])].reset_index(drop=True)
        result = audit(
            outcome_label(expanded, scorer.outcome).to_numpy(dtype=float),
            expanded["probability"].to_numpy(dtype=float),
            _attributes(expanded),
            truth=expanded["harm_12m"].to_numpy(dtype=float) if synthetic else None,
            decisions=_decisions(expanded, scorer),
            clusters=expanded["household_id"].to_numpy(),
            periods=expanded["quarter"].to_numpy(),
            config=config,
        )
        contributions = [CONTRIBUTION + s for s in scorer.signals]
        attribute_keys = [*CHILD_COLUMNS[1:], AGE, "referrer_type", "referrer_relationship"]
        explained = rows.select("base", *contributions, *attribute_keys).toPandas()
    finally:
        rows.unpersist()
    gaps = gaps_from_contributions(
        scorer.signals,
        explained["base"].to_numpy(dtype=float),
        explained[contributions].to_numpy(dtype=np.float64),
        _attributes(explained),
        result,
    )
    return SparkAudit(result=result, gaps=gaps, cells=len(cells), synthetic=synthetic)
