"""The catalogue compiled to Spark SQL (local[2]) equals the numpy builder on a small world,
from Python and from ``triage features build --engine spark``.
"""

# ruff: noqa: F811  (the fixture of tests/spark_support.py is imported, then requested by name)
from __future__ import annotations

import pandas as pd
import pytest
from spark_support import spark  # noqa: F401  (fixture)
from test_sql_parity import assert_same_features
from typer.testing import CliRunner

from cli.app import app
from features.batch import build_features as numpy_features
from features.sql.spark import build_features_spark
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("spark-extract")
    write_extract(generate_world(WorldParams(n_referrals=400, seed=13)), directory)
    return directory


@pytest.fixture(scope="module")
def numpy(extract) -> pd.DataFrame:
    tables = {
        t: pd.read_parquet(extract / f"{t}.parquet")
        for t in ("children", "referrals", "events", "decisions", "persons",
                  "household_memberships")
    }  # fmt: skip
    return numpy_features(
        tables["children"],
        tables["referrals"],
        tables["events"],
        tables["decisions"],
        persons=tables["persons"],
        memberships=tables["household_memberships"],
    )


def test_spark_equals_numpy_on_an_extract(spark, extract, numpy):
    assert_same_features(build_features_spark(spark, extract), numpy)


def test_the_command_line_builds_the_same_features_on_spark(spark, extract, numpy, tmp_path):
    out = tmp_path / "features.parquet"
    args = ["features", "build", str(extract), "--engine", "spark", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--master", "local[2]"])
    assert result.exit_code == 0, result.output
    assert out.is_dir()  # Spark's parts, which pandas reads as one table
    written = pd.read_parquet(out).set_index("referral_id")
    assert_same_features(written, numpy)
    assert spark.sparkContext._jsc is not None  # the command left the running session alone
