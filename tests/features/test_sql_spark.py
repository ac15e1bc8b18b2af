"""The catalogue compiled to Spark SQL (local[2]) equals the numpy builder on a small world.

Needs pyspark and a Java runtime (Debian's openjdk-17-jre-headless; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from test_sql_parity import assert_same_features

from features.batch import build_features as numpy_features
from features.sql.spark import build_features_spark
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the Spark parity test: java must be installed")
        pytest.skip("needs a Java runtime")
    pyspark_sql = pytest.importorskip("pyspark.sql")
    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("triage-features-sql")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_equals_numpy_on_an_extract(spark, tmp_path):
    write_extract(generate_world(WorldParams(n_referrals=400, seed=13)), tmp_path)
    tables = {
        t: pd.read_parquet(tmp_path / f"{t}.parquet")
        for t in ("children", "referrals", "events", "decisions", "persons",
                  "household_memberships")
    }  # fmt: skip
    numpy = numpy_features(
        tables["children"],
        tables["referrals"],
        tables["events"],
        tables["decisions"],
        persons=tables["persons"],
        memberships=tables["household_memberships"],
    )
    assert_same_features(build_features_spark(spark, tmp_path), numpy)
