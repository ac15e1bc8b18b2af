"""Run the compiled catalogue on Spark: the same query, Spark SQL's spelling (``SPARK``).

Temporary views over the extract's Parquet files (``features.sql.sources``), the session in
UTC, then the one compiled query. The caller owns the session (local or a cluster's);
``spark_session`` makes one for the command line, refusing clearly without pyspark or Java.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from features.catalogue import CATALOGUE, Signal
from features.sql.compiler import compile_signals
from features.sql.dialect import SPARK
from features.sql.sources import source_views


class SparkUnavailable(RuntimeError):
    """No Spark session can start here; the message names the cause and the fix."""


def is_uri(location: str | Path) -> bool:
    """A URI (``s3a://``, ``hdfs://``, ``file:/``) rather than a local path."""
    return "://" in str(location) or str(location).startswith("file:")


def submitted() -> bool:
    """Whether ``spark-submit`` launched this process (its JVM is already up, its master set)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_session(master: str | None = "local[2]", app_name: str = "triage") -> Any:
    """A Spark session on ``master`` (``local[*]`` on one machine), its log quiet, in UTC.

    ``master=None`` keeps the master ``spark-submit --master`` gave.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(
            "pyspark is not installed (pip install pyspark, or the project's dev extra)"
        ) from exc
    local = master is not None and master.startswith("local")
    if local and shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        raise SparkUnavailable(
            "no Java runtime: Spark needs java on PATH or JAVA_HOME (e.g. openjdk-17-jre-headless)"
        )
    # The commands show their own progress; Spark's stage bars would write over it.
    builder = SparkSession.builder.appName(app_name).config("spark.ui.showConsoleProgress", "false")
    if master is not None:
        builder = builder.master(master)
    if local:
        builder = builder.config("spark.ui.enabled", "false").config(
            "spark.sql.shuffle.partitions", "4"
        )
        # Local Python workers: this interpreter (which has the project), not a bare python3.
        # pyspark reads only the environment variable for the UDFs' interpreter.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM's own words: a bad master URL, a JVM that will not start
        where = master or "spark-submit's master"
        raise SparkUnavailable(f"Spark did not start on {where}: {exc}") from exc
    session.sparkContext.setLogLevel("ERROR")
    session.conf.set("spark.sql.session.timeZone", "UTC")
    # py4j logs every command it sends the JVM at DEBUG: query text and values, so records.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return session


@contextmanager
def spark_running(master: str | None = "local[2]", app_name: str = "triage") -> Iterator[Any]:
    """A session for one command, stopped after it unless it was already running (a test's)."""
    try:
        from pyspark.sql import SparkSession

        already = SparkSession.getActiveSession() is not None
    except ImportError:
        already = False  # spark_session says what is missing
    session = spark_session(master, app_name)
    try:
        yield session
    finally:
        if not already:
            session.stop()


def spark_features(spark: Any, extract: str | Path, signals: tuple[Signal, ...] = CATALOGUE) -> Any:
    """A Spark DataFrame: ``referral_id`` then every signal as a double, in extract order.

    ``extract`` is a local directory or a URI Spark can read (``s3a://bucket/extract``).
    """
    location = str(extract).rstrip("/")
    remote = is_uri(location)
    spark.conf.set("spark.sql.session.timeZone", "UTC")

    def read(table: str) -> str | None:
        path = f"{location}/{table}.parquet"
        if not remote:
            if not Path(path).exists():
                return None
            path = Path(path).as_posix()
        relation = f"parquet.`{path}`"
        if remote and not _readable(spark, relation):
            return None
        if table == "referrals":
            return _numbered_referrals(spark, relation)
        return relation

    def columns_of(relation: str) -> list[str]:
        columns: list[str] = spark.sql(f"SELECT * FROM {relation}").columns
        return columns

    for statement in source_views(read, columns_of, SPARK):
        spark.sql(statement)
    frame = spark.sql(compile_signals(signals, SPARK).sql)
    return frame.select(
        frame["referral_id"].cast("string"),
        *(frame[s.name].cast("double").alias(s.name) for s in signals),
    )


def _numbered_referrals(spark: Any, relation: str) -> str:
    """The referrals with ``row_order`` (increasing in file order), numbered once.

    The compiled query joins on ``row_order``. ``monotonically_increasing_id`` depends on how
    a scan is split, and the query scans the referrals many times: numbered lazily, two scans
    split differently would pair one referral's counts with another's. Checkpointing the
    numbered rows fixes each referral's number for every scan.
    """
    numbered = spark.sql(
        f"SELECT *, monotonically_increasing_id() AS row_order FROM {relation}"
    ).localCheckpoint(eager=True)
    numbered.createOrReplaceTempView("triage_numbered_referrals")
    return "triage_numbered_referrals"


def _readable(spark: Any, relation: str) -> bool:
    """Whether Spark finds a Parquet table there (optional tables may be absent)."""
    try:
        spark.sql(f"SELECT * FROM {relation} LIMIT 0").schema  # noqa: B018  (resolves the path)
    except Exception as exc:
        if missing_path(exc):
            return False
        raise  # a refused or failed read is not an absent table
    return True


def missing_path(error: Exception) -> bool:
    """Whether Spark refused a read because the path does not exist (not any other failure)."""
    return "PATH_NOT_FOUND" in str(error) or "Path does not exist" in str(error)


def build_features_spark(
    spark: Any, extract_dir: str | Path, signals: tuple[Signal, ...] = CATALOGUE
) -> pd.DataFrame:
    """Every signal for every referral of an extract, computed by a Spark session."""
    arrow = "spark.sql.execution.arrow.pyspark.enabled"
    before = spark.conf.get(arrow, "false")
    # Arrow hands the columns over in batches; without it toPandas pickles row by row.
    spark.conf.set(arrow, "true")
    try:
        frame: pd.DataFrame = spark_features(spark, extract_dir, signals).toPandas()
    finally:
        spark.conf.set(arrow, before)
    return frame.set_index("referral_id").astype("float64")
