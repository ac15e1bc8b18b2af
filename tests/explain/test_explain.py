"""Explanations: ordered reasons with records behind them, exact sums, what-if, global views."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explain.global_views import beeswarm_data, dependence, group_difference, importance
from explain.plots import beeswarm_png, group_difference_png, importance_png, reasons_svg
from explain.reasons import LOWERS, RAISES, reason_order, reasons_for_row, top_reasons
from explain.referral import explain_features, explain_referral, what_if
from explain.unknowns import event_kinds_read, what_the_model_does_not_know
from features.batch import build_features
from features.catalogue import CATALOGUE, PROTECTED_INPUTS, SIGNALS, Source
from features.online import online_features
from models.dataset import DEFAULT_OUTCOME, OUTCOMES, load_training_data
from models.scorer import Scorer
from models.train import FAMILIES, fit_scorer
from triage.store.engine import make_engine, session_factory
from triage.store.loader import load_extract
from triage.store.migrate import upgrade
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract
from triage.vocab import EventKind


@pytest.fixture(scope="module")
def world():
    """A small synthetic world."""
    return generate_world(WorldParams(n_referrals=6_000, seed=5))


@pytest.fixture(scope="module")
def extract(world, tmp_path_factory) -> Path:
    """The world written as an extract."""
    directory = tmp_path_factory.mktemp("explain-extract")
    write_extract(world, directory)
    return directory


@pytest.fixture(scope="module")
def scorers(extract) -> dict[str, Scorer]:
    """Both families fitted on the small world, as scorers."""
    data = load_training_data(extract)
    return {family: fit_scorer(data, family, n_boot=2, version="test/1") for family in FAMILIES}


@pytest.fixture(scope="module")
def store(extract, tmp_path_factory):
    """The extract loaded into a SQLite store; yields a session factory."""
    url = f"sqlite:///{tmp_path_factory.mktemp('explain-db') / 'triage.db'}"
    upgrade(url)
    load_extract(extract, url=url, progress=False)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def batch_features(world):
    """Batch features of every referral in the world."""
    return build_features(world.children, world.referrals, world.events, world.decisions)


@pytest.fixture(scope="module")
def busy_referral(batch_features) -> str:
    """A referral with several earlier referrals about the same child in the last year."""
    counts = batch_features["prior_referrals_child_365d"]
    return str(counts[counts >= 2].index[0])


def test_reasons_are_ordered_by_absolute_contribution_with_stable_ties():
    contributions = np.array([0.1, -0.5, 0.5, 0.0, -0.1])
    assert list(reason_order(contributions)) == [1, 2, 0, 4, 3]
    signals = ("injury_reported", "referrer_professional", "infant_under_1", "concern_neglect",
               "prior_referrals_child_90d")  # fmt: skip
    reasons = reasons_for_row(signals, [1.0, 1.0, 0.0, 0.0, 2.0], contributions)
    assert [r.signal for r in reasons] == [signals[i] for i in (1, 2, 0, 4, 3)]
    assert reasons[0].direction == LOWERS and reasons[1].direction == RAISES
    assert reasons[1].sentence == SIGNALS["infant_under_1"].sentence(0.0)
    assert reasons[3].sentence == "2 earlier referrals about this child in the last 90 days"


def test_batch_top_reasons_equal_one_referral_at_a_time(scorers, batch_features):
    scorer = scorers["scorecard"]
    X = scorer.matrix(batch_features.head(400))
    batch = scorer.score_matrix(X, with_range=False)
    table = top_reasons(scorer.signals, X, batch.contributions, top=5)
    sentences = table.sentences()
    for i in range(0, 400, 37):
        one = reasons_for_row(scorer.signals, X[i], batch.contributions[i])[:5]
        assert [r.signal for r in table.row(i)] == [r.signal for r in one]
        assert list(sentences[i]) == [r.sentence for r in one]
        np.testing.assert_allclose([r.contribution for r in one], table.contributions[i])


@pytest.mark.parametrize(("family", "tolerance"), [("scorecard", 1e-6), ("challenger", 1e-4)])
def test_explained_score_adds_up_and_matches_the_batch_path(
    family, tolerance, scorers, store, batch_features, busy_referral
):
    scorer = scorers[family]
    with store() as session:
        explained = explain_referral(session, scorer, referral_id=busy_referral)
    total = explained.base + sum(r.contribution for r in explained.reasons)
    assert abs(total - explained.log_odds) <= tolerance
    assert abs(explained.log_odds - scorer.model.log_odds(
        scorer.matrix(batch_features.loc[[busy_referral]]))[0]) <= tolerance  # fmt: skip
    batch = scorer.score(batch_features.loc[[busy_referral]])
    assert explained.probability == pytest.approx(batch.probability[0], abs=1e-12)
    assert explained.band == batch.band[0]
    assert explained.probability_low <= explained.probability <= explained.probability_high
    assert {r.signal for r in explained.reasons} == set(scorer.signals)
    magnitudes = [abs(r.contribution) for r in explained.reasons]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_reasons_name_the_records_behind_them(scorers, store, world, busy_referral):
    with store() as session:
        explained = explain_referral(session, scorers["scorecard"], referral_id=busy_referral)
    reason = next(r for r in explained.reasons if r.signal == "prior_referrals_child_365d")
    assert len(reason.record_ids) == reason.value >= 2
    refs = world.referrals.set_index("referral_id")
    this = refs.loc[busy_referral]
    behind = refs.loc[list(reason.record_ids)]
    assert (behind["child_id"] == this["child_id"]).all()
    assert (behind["received_at"] < this["received_at"]).all()
    assert busy_referral not in reason.record_ids


def test_what_if_without_a_disputed_record_rescores_deterministically(
    scorers, store, busy_referral
):
    scorer = scorers["scorecard"]
    with store() as session:
        before = explain_referral(session, scorer, referral_id=busy_referral)
        disputed = next(r for r in before.reasons if r.signal == "prior_referrals_child_365d")
        first = what_if(session, scorer, referral_id=busy_referral,
                        disputed_record_ids=[disputed.record_ids[0]])  # fmt: skip
        again = what_if(session, scorer, referral_id=busy_referral,
                        disputed_record_ids=[disputed.record_ids[0]])  # fmt: skip
    after = {r.signal: r for r in first.after.reasons}
    assert after["prior_referrals_child_365d"].value == disputed.value - 1
    assert disputed.record_ids[0] not in after["prior_referrals_child_365d"].record_ids
    assert first.before.probability == before.probability
    assert first.after == again.after
    assert first.after.excluded_record_ids == (disputed.record_ids[0],)
    assert first.unknown_record_ids == ()


def test_what_if_with_an_unrelated_record_changes_nothing_and_says_so(
    scorers, store, busy_referral
):
    with store() as session:
        result = what_if(session, scorers["scorecard"], referral_id=busy_referral,
                         disputed_record_ids=["NOT-A-RECORD"])  # fmt: skip
    assert result.unknown_record_ids == ("NOT-A-RECORD",)
    assert result.probability_change == 0.0


def test_online_features_without_a_model_explain_in_process(scorers, store, busy_referral):
    with store() as session:
        features = online_features(session, referral_id=busy_referral)
    explained = explain_features(scorers["challenger"], features)
    assert explained.referral_id == busy_referral
    assert explained.model_version == "test/1"
    assert explained.outcome_words == OUTCOMES[DEFAULT_OUTCOME]


def test_group_difference_accounts_exactly_for_the_mean_log_odds_gap(scorers, batch_features):
    scorer = scorers["challenger"]
    X = scorer.matrix(batch_features)
    batch = scorer.score_matrix(X, with_range=False)
    groups = np.where(X[:, scorer.signals.index("child_age_months")] < 60, "under 5", "5 and over")
    table = group_difference(scorer.signals, batch.base, batch.contributions, groups,
                             "under 5", "5 and over")  # fmt: skip
    gap = batch.log_odds[groups == "under 5"].mean() - batch.log_odds[groups == "5 and over"].mean()
    assert table["difference"].sum() == pytest.approx(gap, abs=1e-9)
    assert table.attrs["log_odds_gap"] == pytest.approx(gap, abs=1e-9)
    assert table["share_of_gap"].sum() == pytest.approx(1.0)
    assert table["difference"].abs().is_monotonic_decreasing
    with pytest.raises(ValueError, match="no rows"):
        group_difference(scorer.signals, batch.base, batch.contributions, groups, "x", "under 5")


def test_importance_and_dependence_read_the_contributions(scorers, batch_features):
    scorer = scorers["scorecard"]
    X = scorer.matrix(batch_features)
    contributions = scorer.score_matrix(X, with_range=False).contributions
    table = importance(scorer.signals, contributions)
    assert table["mean_abs_contribution"].is_monotonic_decreasing
    top = table["signal"].iloc[0]
    j = scorer.signals.index(top)
    assert table["mean_abs_contribution"].iloc[0] == pytest.approx(
        np.abs(contributions[:, j]).mean()
    )
    # For the scorecard every value of a signal has exactly one contribution: its bin's.
    shape = dependence(scorer.signals, X, contributions, "prior_referrals_child_365d")
    assert (shape["low"] == shape["high"]).all()
    assert shape["count"].sum() == len(X)
    swarm = beeswarm_data(scorer.signals, X, contributions, max_rows=500, top=5)
    assert swarm["signal"].nunique() == 5 and len(swarm) == 5 * 500


def test_svg_is_self_contained_accessible_and_carries_sign_in_text(scorers, store, busy_referral):
    with store() as session:
        explained = explain_referral(session, scorers["scorecard"], referral_id=busy_referral)
    svg = reasons_svg(explained.reasons, top=6)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.find(f"{ns}title") is not None
    assert len(root.findall(f"{ns}g/{ns}rect")) == 6
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    signs = [t.text for t in root.iter(f"{ns}text") if t.text and t.text[0] in "+−±"]
    expected = ["+" if r.contribution > 0 else "−" if r.contribution < 0 else "±"
                for r in explained.reasons[:6]]  # fmt: skip
    assert [s[0] for s in signs] == expected


def test_png_plots_are_written(scorers, batch_features, tmp_path):
    scorer = scorers["scorecard"]
    X = scorer.matrix(batch_features)
    batch = scorer.score_matrix(X, with_range=False)
    groups = np.where(X[:, 0] < 60, "a", "b")
    paths = [
        importance_png(importance(scorer.signals, batch.contributions), tmp_path / "imp.png"),
        beeswarm_png(beeswarm_data(scorer.signals, X, batch.contributions), tmp_path / "bee.png"),
        group_difference_png(
            group_difference(scorer.signals, batch.base, batch.contributions, groups, "a", "b"),
            tmp_path / "gap.png",
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_what_the_model_does_not_know_follows_the_catalogue():
    text = what_the_model_does_not_know()
    counted = {k for s in CATALOGUE if s.source is Source.events for k in s.filter.kinds}
    members = {
        k for s in CATALOGUE if s.source is Source.memberships for k in s.filter.person_records
    }
    assert {k for kinds in event_kinds_read().values() for k in kinds} == (
        counted | members | {EventKind.cp_plan_end}
    )
    assert any("who lives in the household" in line for line in text["reads"])
    assert all(p.replace("_", " ") in text["never_sees"][-1] for p in PROTECTED_INPUTS)
    assert any("narrative" in line for line in text["never_sees"])
    assert "decision is yours" in text["summary"]


def test_training_run_carries_the_global_views(extract, world, tmp_path, monkeypatch):
    import mlflow

    from explain.report import log_global_views
    from models.tracking import log_and_register
    from models.train import TrainConfig, train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = TrainConfig(scorecard_bootstraps=2, challenger_bootstraps=1, evaluation_bootstraps=5)
    result = train(extract, config)
    registration = log_and_register(
        result, tracking_uri=uri, model_name="referral-triage", alias="champion"
    )
    log_global_views(registration.run_id, result, tracking_uri=uri)
    listed = mlflow.MlflowClient().list_artifacts(registration.run_id, "explanations")
    names = {Path(a.path).name for a in listed}
    expected = {"importance.csv", "importance.png", "importance.svg", "beeswarm.png",
                "group_difference_ethnicity.csv", "group_difference_ethnicity.png"}  # fmt: skip
    assert expected <= names
    local = mlflow.artifacts.download_artifacts(
        run_id=registration.run_id, artifact_path="explanations/importance.csv", dst_path=tmp_path
    )
    table = pd.read_csv(local)
    assert set(table["signal"]) == set(result.scorer.signals)
    assert table["mean_abs_contribution"].is_monotonic_decreasing

    # The registered champion scores the whole extract from the command line, audited.
    from sqlalchemy import select
    from typer.testing import CliRunner

    from cli.app import app
    from triage.store.tables import AuditEventRow

    db = f"sqlite:///{tmp_path}/triage.db"
    upgrade(db)
    monkeypatch.setenv("TRIAGE_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("TRIAGE_DATABASE_URL", db)
    out = tmp_path / "scores.csv"
    run = CliRunner().invoke(app, ["score", "--data", str(extract), "--out", str(out)])
    assert run.exit_code == 0, run.output
    scores = pd.read_csv(out)
    assert sorted(scores["referral_id"]) == sorted(world.referrals["referral_id"])
    assert scores["band"].isin(result.scorer.bands.names).all()
    assert (scores["probability_low"] <= scores["probability"] + 1e-12).all()
    assert scores["reason_1_contribution"].abs().ge(scores["reason_5_contribution"].abs()).all()
    engine = make_engine(db)
    with session_factory(engine)() as session:
        audit = session.scalars(select(AuditEventRow)).all()
    engine.dispose()
    assert [(a.action, a.payload["rows"]) for a in audit] == [("export", len(scores))]

    # Scoring a feature table built by another engine gives the same scores.
    from features.sql import build_features as sql_features

    table = tmp_path / "features.parquet"
    sql_features(extract, engine="duckdb", threads=1).to_parquet(table)
    again = tmp_path / "again.csv"
    run = CliRunner().invoke(app, ["score", "--features", str(table), "--out", str(again)])
    assert run.exit_code == 0, run.output
    pd.testing.assert_frame_equal(
        pd.read_csv(again).sort_values("referral_id", ignore_index=True),
        scores.sort_values("referral_id", ignore_index=True),
    )
    first = result.scorer.signals[0]
    pd.read_parquet(table).drop(columns=first).to_parquet(tmp_path / "short.parquet")
    for features, said in [
        (tmp_path / "short.parquet", f"lacks signals {first}"),
        (tmp_path / "missing.parquet", "No feature table"),
        (out, "is not a Parquet table"),
    ]:
        run = CliRunner().invoke(app, ["score", "--features", str(features), "--out", str(again)])
        assert run.exit_code == 2 and said in " ".join(run.output.split()), run.output

    # The published audit from the command line: disclosure control, no internal structure.
    import json

    folder = tmp_path / "audit"
    args = ["audit", "--data", str(extract), "--out", str(folder), "--bootstraps", "20"]
    bad = CliRunner().invoke(app, [*args, "--intersection", "sex,postcode"])
    assert bad.exit_code == 2 and "--intersection: unknown attribute 'postcode'" in bad.output
    three_way = ["--intersection", "ethnicity,sex,age_band"]
    run = CliRunner().invoke(app, [*args, "--publish", *three_way])
    assert run.exit_code == 0, run.output
    published = json.loads((folder / "fairness_audit.json").read_text())
    assert ["ethnicity", "sex", "age_band"] in published["config"]["intersections"]
    assert "ethnicity × sex × age_band" in {row["grouping"] for row in published["groups"]}
    assert "structure" not in published and published["disclosure"]["min_count"] == 10
    assert published["config"]["inference"] == "household" and "source" not in published["meta"]
    assert "Disclosure control" in (folder / "fairness_audit.html").read_text()

    # The same audit from the feature table DuckDB built: the same document.
    other = tmp_path / "audit-from-features"
    again = ["--out", str(other), "--features", str(table), "--publish", *three_way]
    run = CliRunner().invoke(app, [*args[:-4], *again, "--bootstraps", "20"])
    assert run.exit_code == 0, run.output
    from_table = json.loads((other / "fairness_audit.json").read_text())
    published.pop("generated_at"), from_table.pop("generated_at")
    assert from_table == published


def test_days_since_reads_in_whole_days():
    signal = SIGNALS["days_since_last_referral"]
    assert signal.sentence(8.22091) == "The last referral about this child was 8 days ago"
    assert signal.sentence(1.9) == "The last referral about this child was 1 day ago"
    assert signal.sentence(0.3) == "The last referral about this child was less than 1 day ago"
    assert signal.sentence(float("nan")) == "There is no earlier referral about this child"
