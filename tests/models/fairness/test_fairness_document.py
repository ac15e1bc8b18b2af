"""Fairness document: schema, pseudonymisation, the HTML report, a training run's audit."""

from __future__ import annotations

import json

from models.fairness import (
    SCHEMA_VERSION,
    AuditConfig,
    audit,
    render_html,
    to_document,
    validate_document,
)


def test_document_schema_pseudonymised_and_html(small_audit) -> None:
    _, _, _, result = small_audit
    document = to_document(result, meta={"source": "/data/extract", "n_note": "x"})
    validate_document(document)
    assert document["schema_version"] == SCHEMA_VERSION
    json.dumps(document, allow_nan=False)
    assert document["suppressed"] == [] or "n" in document["suppressed"][0]
    private = to_document(result, meta={"source": "/data/extract"}, pseudonymise=True)
    validate_document(private)
    assert "source" not in private["meta"]
    assert private["config"]["min_count"] == 10
    assert "structure" in document and "structure" not in private
    for row in private["metrics"]:
        for key in ("numerator", "denominator"):
            assert row.get(key) is None or row[key] == 0 or row[key] >= 10
    hidden = [r for r in private["metrics"] if r.get("withheld")]
    assert hidden and all(r["estimate"] is None for r in hidden)
    for doc in (document, private):
        html = render_html(doc)
        assert html.startswith("<!doctype html>") and "<svg" in html
        assert "data:image/png;base64," in html
        assert "<script" not in html and "https://" not in html.replace("http://www.w3.org", "")
    assert "Disclosure control" in render_html(private)


def test_schema_requires_the_quarter_views_intervals_and_test_method(small_audit) -> None:
    import jsonschema
    import numpy as np
    import pytest

    y, p, attributes, _ = small_audit
    periods = np.random.default_rng(0).choice(["2026-Q1", "2026-Q2"], y.size)
    config = AuditConfig(attributes=("sex",), intersections=(), n_boot=20)
    document = to_document(audit(y, p, attributes, periods=periods, config=config))
    validate_document(document)
    assert {"auc", "calibration_gap", "mean_score"} <= {r["metric"] for r in document["by_quarter"]}
    published = to_document(
        audit(y, p, attributes, periods=periods, config=config), pseudonymise=True
    )
    validate_document(published)
    html = render_html(published)
    assert "Change over time" in html and "calibration gap" in html and "FNR at 10%" in html
    overall = [r for r in published["by_quarter"] if r["grouping"] == "overall"]
    auc = next(r for r in overall if r["metric"] == "auc")
    assert f"{auc['lower']:.3f} to {auc['upper']:.3f}" in html
    # A 2.0 quarter row (no bootstrap interval) and an unnamed test no longer validate.
    old = json.loads(json.dumps(document))
    for row in old["by_quarter"]:
        row.pop("lower"), row.pop("upper")
    with pytest.raises(jsonschema.ValidationError, match="lower"):
        validate_document(old)
    unnamed = json.loads(json.dumps(document))
    unnamed["quarter_change"][0]["method"] = "eyeballed"
    with pytest.raises(jsonschema.ValidationError, match="eyeballed"):
        validate_document(unnamed)


def test_training_run_audit_is_logged_to_mlflow(tmp_path) -> None:
    import mlflow

    from explain.fairness_gaps import log_fairness_audit
    from models.tracking import configure_mlflow
    from models.train import TrainConfig, train
    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    extract = tmp_path / "extract"
    write_extract(generate_world(WorldParams(n_referrals=3_000, seed=7)), extract)
    fast = TrainConfig(scorecard_bootstraps=2, challenger_bootstraps=1, evaluation_bootstraps=5)
    result = train(extract, fast)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    configure_mlflow(uri)
    # Artifacts in tmp_path: the default experiment would put them under ./mlruns.
    experiment = mlflow.create_experiment("audit-test", artifact_location=tmp_path.as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        pass
    document = log_fairness_audit(
        run.info.run_id,
        result,
        tracking_uri=uri,
        directory=extract,
        config=AuditConfig(n_boot=50),
    )
    validate_document(document)
    assert document["meta"]["run_id"] == run.info.run_id and document["meta"]["synthetic"]
    metrics = {r["metric"] for r in document["human"]}
    assert {"escalated_rate", "investigated_rate", "agreement_with_band"} <= metrics
    assert {"harm_missed_rate", "not_escalated_despite_high_band"} <= metrics
    assert document["label_gap"] and document["why_gaps"]
    # Whose voice counts: relatives' referrals are a group beside professionals', on both
    # labels, for the model and for the people who decided.
    voice = {
        (r["group"], r["label"]) for r in document["metrics"] if r["grouping"] == "referrer_voice"
    }
    assert {("professional", "truth"), ("professional", "observed")} <= voice
    assert any(
        h["grouping"] == "referrer_voice" and h["metric"] == "harmed_not_escalated"
        for h in document["human"]
    )
    listed = {
        g["group"]
        for g in document["groups"] + document["suppressed"]
        if g["grouping"] == "referrer_voice"
    }
    assert {"family or friend", "professional", "anonymous"} <= listed
    assert "referrer_voice" in render_html(document)
    assert all("image" not in g for g in document["why_gaps"])
    shown = {(g["grouping"], g["group"]) for g in document["groups"]}
    hidden = {(g["grouping"], g["group"]) for g in document["suppressed"]}
    assert not shown & hidden
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "fairness")}
    assert artifacts == {"fairness/fairness_audit.json", "fairness/fairness_audit.html"}


def test_a_stored_document_pseudonymises_like_a_fresh_one(small_audit) -> None:
    from models.fairness import pseudonymise_document

    _, _, _, result = small_audit
    meta = {"source": "/data/extract", "run_id": "r1", "data_fingerprint": "f", "n_note": "x"}
    stored = to_document(result, meta=meta)
    fresh = to_document(result, meta=meta, pseudonymise=True)
    served = pseudonymise_document(stored)
    validate_document(served)
    for key in ("meta", "config", "suppressed", "metrics", "groups", "comparisons", "label_gap"):
        assert served[key] == json.loads(json.dumps(fresh[key])), key
    assert stored["meta"]["run_id"] == "r1", "the stored document is left as it was"
