"""The model and docs routes, and what operators see: health, readiness, metrics, security
headers and the access log, without personal data."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import json

import pytest
from api_support import (  # noqa: F401  (fixtures)
    ClientFactory,
    Switch,
    admin,
    client,
    db,
    make_client,
    referral,
    scorer,
    settings,
)
from fastapi.testclient import TestClient

from models.scorer import Scorer

# --- model and docs -------------------------------------------------------------------------


def test_model_route_describes_the_champion(client: TestClient, scorer: Scorer) -> None:
    info = client.get("/v1/model").json()
    assert info["status"] == "loaded" and info["version"] == "test-model/1"
    assert info["bands"]["thresholds"] == list(scorer.bands.thresholds)
    assert info["outcome_words"] == scorer.outcome_words
    assert {rule["code"] for rule in info["safety_rules"]} >= {"non_mobile_infant_injury"}


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/referrals", "/v1/events", "/v1/queue", "/v1/model"} <= set(spec["paths"])
    body = spec["paths"]["/v1/referrals"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["police"]["value"]["source_referral_id"] == "WMP-2026-004512"
    assert "AgencyEventIn" in spec["components"]["schemas"]


# --- operations -------------------------------------------------------------------------------


def test_health_readiness_and_metrics_without_personal_data(
    make_client: ClientFactory, scorer: Scorer
) -> None:
    bare = make_client(None)
    assert bare.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}
    degraded = bare.get("/readyz")
    assert degraded.status_code == 200
    assert degraded.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "model": "missing"},
    }

    client = make_client(Switch(scorer))
    assert client.get("/readyz").json()["status"] == "ok"
    body = referral()
    referral_id = client.post("/v1/referrals", json=body).json()["referral_id"]
    client.get(f"/v1/referrals/{referral_id}")
    text = client.get("/metrics").text
    assert 'triage_model_info{version="test-model/1"} 1.0' in text
    assert "triage_scores{band=" in text
    assert "triage_queue_unscored 0.0" in text
    assert 'route="/v1/referrals/{referral_id}"' in text
    for personal in (referral_id, body["child"]["given_name"], body["child"]["child_id"]):
        assert personal not in text


def test_security_headers_on_every_reply(make_client: ClientFactory) -> None:
    client = make_client(None)
    for response in (
        client.get("/v1/queue"),
        client.get("/v1/referrals/R-nope"),
        client.get("/docs"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "Strict-Transport-Security" not in response.headers
    assert client.get("/v1/queue").headers["Cache-Control"] == "no-store"
    over_tls = TestClient(client.app, base_url="https://testserver", headers=client.headers)
    assert "max-age" in over_tls.get("/healthz").headers["Strict-Transport-Security"]


def test_access_log_is_json_with_route_templates_only(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = referral()
    with caplog.at_level("INFO", logger="api.access"):
        referral_id = client.post("/v1/referrals", json=body).json()["referral_id"]
        client.get(f"/v1/referrals/{referral_id}", params={"x": body["child"]["family_name"]})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert [line["route"] for line in lines] == ["/v1/referrals", "/v1/referrals/{referral_id}"]
    assert all(line["actor"].startswith("U-") for line in lines)
    everything = caplog.text
    for personal in (referral_id, body["child"]["given_name"], body["child"]["family_name"]):
        assert personal not in everything
