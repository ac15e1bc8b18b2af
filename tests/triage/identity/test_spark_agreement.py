"""Splink's Spark backend (local[2]) scores a small world as the DuckDB backend does.

National scale would run the same model on Spark; this checks that the trained model means
the same there: the same blocked pairs, the same comparison levels and match probabilities.
Needs pyspark and a Java runtime (Debian's openjdk-17-jre-headless; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from identity_world import make_world

from triage.identity import IdentityModel
from triage.identity.model import prepare

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None or not _has_pyspark():
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the Spark agreement test: pyspark and java must be installed")
        pytest.skip("needs pyspark and a Java runtime")
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.jars", similarity_jar_location())
        .appName("triage-identity-agreement")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _has_pyspark() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True


def test_spark_agrees_with_duckdb(spark: Any) -> None:
    from splink import Linker, SparkAPI

    world = make_world(120, seed=11)
    model = IdentityModel.train(world.records)
    duck = model.link(world.records)

    table = prepare(world.records)
    db_api = SparkAPI(spark_session=spark, break_lineage_method="persist")
    sdf = db_api.register(spark.createDataFrame(table.to_pandas()), table_name="identity_records")
    linker = Linker(sdf, model.settings_for("spark"), log_level=None)
    scored = linker.inference.predict(warning_mode="never").as_pandas_dataframe()

    gammas = [c for c in scored.columns if c.startswith("gamma_")]
    spark_pairs = scored[["record_id_l", "record_id_r", "match_probability", *gammas]]
    duck_linker_pairs = _duckdb_pairs(model, world.records)
    merged = duck_linker_pairs.merge(
        spark_pairs, on=["record_id_l", "record_id_r"], how="outer", suffixes=("_d", "_s")
    )
    assert len(merged) == len(duck_linker_pairs) == len(spark_pairs)
    for gamma in gammas:
        assert (merged[f"{gamma}_d"] == merged[f"{gamma}_s"]).all(), gamma
    assert (merged["match_probability_d"] - merged["match_probability_s"]).abs().max() < 1e-9
    linked = spark_pairs["match_probability"] >= 0.5
    assert linked.sum() == (duck.pairs["match_probability"] >= 0.5).sum()


def _duckdb_pairs(model: IdentityModel, records: pd.DataFrame) -> pd.DataFrame:
    from triage.identity.model import _linker

    linker, _, _ = _linker(prepare(records), model.settings)
    scored = linker.inference.predict(warning_mode="never").as_pandas_dataframe()
    gammas = [c for c in scored.columns if c.startswith("gamma_")]
    return scored[["record_id_l", "record_id_r", "match_probability", *gammas]]
