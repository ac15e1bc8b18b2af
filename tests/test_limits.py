"""Rate limits per key, per person and per sign-in name; request timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from access_helpers import PASSWORD, key_headers, user_headers
from fastapi.testclient import TestClient

from api.app import create_app
from triage.settings import Settings
from triage.store.migrate import upgrade


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Tight limits, so that tests reach them in a few requests."""
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade(url)
    return Settings(
        var_dir=tmp_path,
        database_url=url,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db",
        rate_limit_key="4/minute",
        rate_limit_user="3/minute",
        rate_limit_sign_in="2/minute",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app without a model."""
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_each_person_has_their_own_budget_with_retry_after(
    client: TestClient, settings: Settings
) -> None:
    alice = user_headers(settings, "practitioner")
    bob = user_headers(settings, "practitioner")
    assert [client.get("/v1/queue", headers=alice).status_code for _ in range(3)] == [200] * 3
    refused = client.get("/v1/queue", headers=alice)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/v1/queue", headers=bob).status_code == 200


def test_api_keys_have_their_own_limit(client: TestClient, settings: Settings) -> None:
    key = key_headers(settings.database_url, "police-mash-feed")
    statuses = [
        client.get("/v1/referrals/R-none/receipt", headers=key).status_code for _ in range(5)
    ]
    assert statuses == [404, 404, 404, 404, 429]


def test_sign_in_attempts_are_limited_per_username_even_when_unknown(
    client: TestClient, settings: Settings
) -> None:
    user_headers(settings, "practitioner", username="carol")
    tries = [
        client.post("/v1/auth/token", json={"username": "Carol", "password": "guess"}).status_code
        for _ in range(2)
    ]
    assert tries == [401, 401]
    # The third attempt is refused before the password is checked, even the right one.
    right = client.post("/v1/auth/token", json={"username": "carol", "password": PASSWORD})
    assert right.status_code == 429
    ghost = [
        client.post("/v1/auth/token", json={"username": "ghost", "password": "x"}).status_code
        for _ in range(3)
    ]
    assert ghost == [401, 401, 429]


def test_pages_share_the_person_budget(client: TestClient, settings: Settings) -> None:
    headers = user_headers(settings, "practitioner", username="dana")
    form = client.get("/login")
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    signed_in = client.post(
        "/login",
        data={"username": "dana", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    assert client.get("/v1/queue", headers=headers).status_code == 200  # the same person
    pages = [client.get("/queue", headers={"Accept": "text/html"}) for _ in range(3)]
    assert [p.status_code for p in pages] == [200, 200, 429]
    assert "Too many requests" in pages[-1].text


def test_a_request_without_a_reply_in_time_gets_503_and_the_service_goes_on(
    settings: Settings,
) -> None:
    quick = settings.model_copy(update={"request_timeout_seconds": 0.3})
    app = create_app(quick, scorer_loader=lambda: None, score_backlog_on_start=False)
    finished: list[bool] = []

    @app.get("/slow")
    def slow() -> dict[str, str]:
        time.sleep(1.0)
        finished.append(True)
        return {"late": "yes"}

    with TestClient(app, raise_server_exceptions=False) as client:
        started = time.perf_counter()
        response = client.get("/slow")
        elapsed = time.perf_counter() - started
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "timeout"
        assert response.headers["Retry-After"] == "5"
        assert elapsed < 0.9
        assert client.get("/healthz").status_code == 200
        time.sleep(1.0)
    assert finished == [True]  # the abandoned work ran to its end
