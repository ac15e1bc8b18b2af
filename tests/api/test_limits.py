"""Rate limits per key, per person and per sign-in name; request timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from access_helpers import PASSWORD, key_headers, user_headers
from fastapi.testclient import TestClient
from store_support import StoreTemplates

from api.app import create_app
from triage.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, store_templates: StoreTemplates) -> Settings:
    """Tight limits, so that tests reach them in a few requests."""
    url = store_templates.sqlite(tmp_path / "triage.db")
    return Settings(
        var_dir=tmp_path,
        database_url=url,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db",
        rate_limit_key="4/minute",
        rate_limit_user="3/minute",
        rate_limit_sign_in="2/minute",
        rate_limit_sign_in_client="4/minute",
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


def test_failed_sign_ins_are_limited_per_username_and_client(
    client: TestClient, settings: Settings
) -> None:
    user_headers(settings, "practitioner", username="carol")

    def token(name: str, password: str, via: TestClient = client) -> int:
        return via.post("/v1/auth/token", json={"username": name, "password": password}).status_code

    # A success clears the count: only failures in a row use up the limit.
    assert [token("carol", PASSWORD), token("Carol", "guess")] == [200, 401]
    assert token("carol", "guess") == 401
    # Two failures: the next attempt is refused before the password is checked, even the right one.
    assert token("carol", PASSWORD) == 429
    # Someone else, from another address, is not locked out by those failures.
    with TestClient(client.app, client=("10.0.0.9", 4000)) as elsewhere:
        assert token("carol", PASSWORD, elsewhere) == 200
    # Unknown names are limited the same way, so they cannot be told apart. (From a fresh
    # address: every attempt above, refused or not, counted against this one's budget of 4.)
    with TestClient(client.app, client=("10.0.0.10", 4000)) as fresh:
        assert [token("ghost", "x", fresh) for _ in range(3)] == [401, 401, 429]


def test_failed_sign_ins_from_one_address_are_limited_across_usernames(
    client: TestClient,
) -> None:
    statuses = [
        client.post("/v1/auth/token", json={"username": f"u{n}", "password": "x"}).status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 429]


def test_limiter_storage_never_holds_what_was_typed(settings: Settings) -> None:
    from api.ratelimit import RateLimits

    limits = RateLimits(settings, key=b"k")
    limits.count("sign_in", "hunter2-typed-in-the-wrong-box")
    storage = limits.limiter.storage  # one store behind both strategies
    stored = repr(storage.storage) + repr(storage.expirations) + repr(storage.events)
    assert "hunter2" not in stored and "sign_in" in stored


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
        page = client.get("/slow", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "took too long" in page.text
        time.sleep(1.5)
    assert finished == [True, True]  # the abandoned work ran to its end
