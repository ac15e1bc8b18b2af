"""``triage score --engine spark``: the champion's scores and reasons computed by Spark."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from cli.features_build import spark_or_exit

if TYPE_CHECKING:
    from models.scorer import Scorer


def score_extract_on_spark(
    extract: str, out: str, scorer: Scorer, *, top: int, master: str | None
) -> tuple[int, dict[str, int]]:
    """Features and scores on Spark, written by Spark as Parquet; rows and referrals per band."""
    from explain.spark_scores import score_on_spark
    from features.sql.spark import spark_features

    with spark_or_exit(master, "triage-score") as spark:
        scores = score_on_spark(spark_features(spark, extract), scorer, top=top)
        scores.write.mode("overwrite").parquet(out)
        written = spark.read.parquet(out)
        bands = {str(r["band"]): int(r["count"]) for r in written.groupBy("band").count().collect()}
    return sum(bands.values()), bands


def remove_output(out: str) -> bool:
    """Remove what Spark wrote at a local path; False for a URI (the operator removes it)."""
    from features.sql.spark import is_uri

    if is_uri(out):
        return False
    shutil.rmtree(Path(out), ignore_errors=True)
    Path(out).unlink(missing_ok=True)
    return True
