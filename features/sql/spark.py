"""Run the compiled catalogue on Spark: the same query, Spark SQL's spelling (``SPARK``).

Temporary views over the extract's Parquet files (``features.sql.sources``), the session in
UTC, then the one compiled query. The caller owns the session (local or a cluster's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from features.catalogue import CATALOGUE, Signal
from features.sql.compiler import compile_signals
from features.sql.dialect import SPARK
from features.sql.sources import source_views


def build_features_spark(
    spark: Any, extract_dir: Path, signals: tuple[Signal, ...] = CATALOGUE
) -> pd.DataFrame:
    """Every signal for every referral of an extract, computed by a Spark session."""
    directory = Path(extract_dir)
    spark.conf.set("spark.sql.session.timeZone", "UTC")

    def read(table: str) -> str | None:
        path = directory / f"{table}.parquet"
        if not path.exists():
            return None
        relation = f"parquet.`{path.as_posix()}`"
        if table == "referrals":  # increasing in file order: the output keeps it
            return f"(SELECT *, monotonically_increasing_id() AS row_order FROM {relation}) rows"
        return relation

    def columns_of(relation: str) -> list[str]:
        columns: list[str] = spark.sql(f"SELECT * FROM {relation}").columns
        return columns

    for statement in source_views(read, columns_of, SPARK):
        spark.sql(statement)
    frame: pd.DataFrame = spark.sql(compile_signals(signals, SPARK).sql).toPandas()
    return frame.set_index("referral_id").astype("float64")
