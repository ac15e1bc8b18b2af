"""Scores on Spark (local[2]) equal the numpy path: probabilities, ranges and contributions to
1e-9, bands and top reasons the same, for both model families, in Python and from the CLI;
and ``triage audit`` writes the same document on numpy, DuckDB and Spark.
"""

# ruff: noqa: F811  (the fixture of tests/spark_support.py is imported, then requested by name)
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from spark_support import spark  # noqa: F401  (fixture)

from explain.batch_scores import score_extract
from explain.spark_scores import score_on_spark
from features.sql.spark import spark_features
from models.dataset import load_training_data
from models.scorer import Scorer
from models.train import FAMILIES, fit_scorer
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _extract(tmp_path_factory: pytest.TempPathFactory, n_referrals: int, seed: int) -> Path:
    directory = tmp_path_factory.mktemp("spark-scores")
    write_extract(generate_world(WorldParams(n_referrals=n_referrals, seed=seed)), directory)
    return directory


@pytest.fixture(scope="module")
def scorers(tmp_path_factory) -> dict[str, Scorer]:
    """Both families fitted in memory on a world of their own (seconds)."""
    data = load_training_data(_extract(tmp_path_factory, 3_000, 11))
    return {family: fit_scorer(data, family, n_boot=2, version="test/1") for family in FAMILIES}


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> Path:
    """The extract scored: small, since Spark's time goes mostly to planning and tasks."""
    return _extract(tmp_path_factory, 500, 17)


@pytest.fixture(scope="module")
def features(spark, extract):
    """The Spark features in several partitions (several UDF batches, reordered), cached."""
    return spark_features(spark, extract).repartition(3).cache()


def assert_same_scores(spark_scores: pd.DataFrame, numpy_scores: pd.DataFrame) -> None:
    """Same rows in the same order; floats to 1e-9, words and bands exactly."""
    assert list(spark_scores.columns) == list(numpy_scores.columns)
    assert list(spark_scores["referral_id"]) == list(numpy_scores["referral_id"])
    for column in numpy_scores.columns:
        a, b = numpy_scores[column], spark_scores[column]
        if pd.api.types.is_float_dtype(a):
            np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), rtol=0, atol=1e-9)
        else:
            assert list(b.astype(str)) == list(a.astype(str)), column


@pytest.mark.parametrize("family", FAMILIES)
def test_spark_scores_equal_the_numpy_path(extract, features, scorers, family):
    scorer = scorers[family]
    numpy_scores = score_extract(extract, scorer, top=5)
    scored = score_on_spark(features, scorer, top=5).toPandas()
    order = pd.Index(scored["referral_id"]).get_indexer(numpy_scores["referral_id"])
    assert (order >= 0).all() and len(scored) == len(numpy_scores)
    assert_same_scores(scored.iloc[order].reset_index(drop=True), numpy_scores)
    assert numpy_scores["band"].nunique() > 1  # the comparison covers more than one band


def test_the_command_line_scores_on_spark_and_audits(
    spark, extract, scorers, tmp_path, monkeypatch
):
    from sqlalchemy import select
    from typer.testing import CliRunner

    import cli.app
    from triage.store import make_engine, session_factory
    from triage.store.migrate import upgrade
    from triage.store.tables import AuditEventRow

    db = f"sqlite:///{tmp_path}/triage.db"
    upgrade(db)
    monkeypatch.setenv("TRIAGE_DATABASE_URL", db)
    scorer = scorers["scorecard"]
    monkeypatch.setattr(cli.app, "champion_or_exit", lambda settings, purpose: scorer)
    out = tmp_path / "scores.parquet"
    args = ["score", "--engine", "spark", "--data", str(extract), "--out", str(out)]
    run = CliRunner().invoke(cli.app.app, args)
    assert run.exit_code == 0, run.output
    assert_same_scores(pd.read_parquet(out), score_extract(extract, scorer, top=5))
    engine = make_engine(db)
    with session_factory(engine)() as session:
        audit = session.scalars(select(AuditEventRow)).all()
    engine.dispose()
    assert [(a.action, a.payload["engine"]) for a in audit] == [("export", "spark")]
    assert audit[0].payload["rows"] == len(pd.read_parquet(out))
    csv = CliRunner().invoke(cli.app.app, [*args[:-1], str(tmp_path / "scores.csv")])
    assert csv.exit_code == 2 and "writes Parquet" in csv.output


def _without_time(document: dict) -> dict:
    """An audit document without its one time stamp."""
    assert document.pop("generated_at")
    return document


def test_the_audit_is_the_same_document_on_numpy_duckdb_and_spark(
    spark, extract, features, scorers, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    import cli.audit
    import explain.spark_audit
    from cli.app import app
    from cli.audit import audit_in_memory
    from cli.features_build import numpy_features
    from features.sql import build_features as duckdb_features
    from models.dataset import load_audit_data
    from models.fairness import AuditConfig, audit_scored, to_document
    from models.splits import TEST

    scorer = scorers["scorecard"]
    monkeypatch.setattr(cli.audit, "champion_or_exit", lambda purpose: scorer)
    # The module's Spark features (three partitions, cached): the catalogue is not compiled
    # and run again; the scores, joins and cell counts are the audit's own.
    monkeypatch.setattr(explain.spark_audit, "spark_features", lambda session, where: features)
    args = ["audit", "--data", str(extract), "--out", str(tmp_path), "--engine", "spark"]
    run = CliRunner().invoke(
        app, [*args, "--master", "local[2]", "--bootstraps", "20", "--min-size", "10"]
    )
    assert run.exit_code == 0, run.output
    assert "cells counted by Spark" in run.output
    on_spark = _without_time(json.loads((tmp_path / "fairness_audit.json").read_text()))
    assert on_spark["why_gaps"] and on_spark["human"] and on_spark["by_quarter"]
    # The in-memory engines through the command's own function, with the command's meta.
    meta = {k: v for k, v in on_spark["meta"].items() if k not in ("n", "labels")}
    config = AuditConfig(n_boot=20, min_size=10)
    for engine in (numpy_features, duckdb_features):
        result, gaps, _ = audit_in_memory(
            engine(extract), extract, scorer, period="test", config=config
        )
        assert _without_time(to_document(result, meta=meta, gaps=gaps)) == on_spark, engine
    # One audited referral fewer is a different document: the comparison above can fail.
    table = load_audit_data(extract, numpy_features(extract), outcome=scorer.outcome)
    ids = table.part(TEST)[1:]
    probability = scorer.score(table.features.loc[ids], with_range=False).probability
    fewer = audit_scored(table, ids, probability, scorer=scorer, directory=extract, config=config)
    document = _without_time(to_document(fewer, meta=meta, gaps=on_spark["why_gaps"]))
    assert document["meta"]["n"] == on_spark["meta"]["n"] - 1
    assert document != on_spark
