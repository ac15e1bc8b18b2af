"""Signing out and new passwords revoke bearer tokens and page sessions on every worker.

Two apps on one database stand for two worker processes under the supervisor: what one
revokes, the other refuses on its very next request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from access_helpers import PASSWORD, bearer, key_headers, user_headers
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import create_app
from cli.app import app as cli
from triage.accounts import set_password
from triage.settings import Settings
from triage.store import AuditEventRow, make_engine, session_factory

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_PASSWORD = "a different long passphrase"


@pytest.fixture
def shared_settings(migrated_url: str, tmp_path: Path) -> Settings:
    """Settings on a migrated SQLite or PostgreSQL database, with one secret for all workers."""
    return Settings(
        var_dir=tmp_path,
        database_url=migrated_url,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db",
        secret_key="one secret shared by every worker",
    )


@pytest.fixture
def workers(shared_settings: Settings) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps on the same database: two worker processes behind the same port."""
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                TestClient(
                    create_app(
                        shared_settings, scorer_loader=lambda: None, score_backlog_on_start=False
                    ),
                    follow_redirects=False,
                )
            )
            for _ in range(2)
        ]
        yield clients[0], clients[1]


def token_for(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the API and return the bearer token."""
    response = client.post("/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def status_on_both(workers: tuple[TestClient, TestClient], token: str) -> list[int]:
    """The status of an authorised read with ``token`` on each worker."""
    return [client.get("/v1/queue", headers=bearer(token)).status_code for client in workers]


def test_api_sign_out_on_one_worker_revokes_the_token_on_both(
    workers: tuple[TestClient, TestClient], shared_settings: Settings
) -> None:
    first, second = workers
    user_headers(shared_settings, "practitioner", username="pat")
    token = token_for(first, "pat")
    other_device = token_for(second, "pat")
    assert status_on_both(workers, token) == [200, 200]

    assert second.post("/v1/auth/logout", headers=bearer(token)).status_code == 204

    assert status_on_both(workers, token) == [401, 401]
    # "Sign out" means everywhere: the token from the other device goes too.
    assert status_on_both(workers, other_device) == [401, 401]
    assert first.post("/v1/auth/logout", headers=bearer(token)).status_code == 401
    # Signing in again afterwards works at once, on both.
    assert status_on_both(workers, token_for(first, "pat")) == [200, 200]


def test_page_sign_out_revokes_bearer_tokens_too(
    workers: tuple[TestClient, TestClient], shared_settings: Settings
) -> None:
    first, second = workers
    user_headers(shared_settings, "practitioner", username="pat")
    token = token_for(first, "pat")
    second.headers["Accept"] = "text/html"
    form = second.get("/login")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    signed_in = second.post(
        "/login", data={"username": "pat", "password": PASSWORD, "csrf_token": csrf.group(1)}
    )
    assert signed_in.status_code == 303
    page_csrf = CSRF.search(second.get("/queue").text)
    assert page_csrf is not None
    assert second.post("/logout", data={"csrf_token": page_csrf.group(1)}).status_code == 303

    assert status_on_both(workers, token) == [401, 401]


def test_a_new_password_revokes_earlier_tokens_on_both_workers(
    workers: tuple[TestClient, TestClient], shared_settings: Settings
) -> None:
    first, _ = workers
    user_headers(shared_settings, "manager", username="max")
    token = token_for(first, "max")
    assert status_on_both(workers, token) == [200, 200]

    engine = make_engine(shared_settings.database_url)
    try:
        with session_factory(engine).begin() as session:
            set_password(session, username="max", password=NEW_PASSWORD, actor="test")
    finally:
        engine.dispose()

    assert status_on_both(workers, token) == [401, 401]
    refused = first.post("/v1/auth/token", json={"username": "max", "password": PASSWORD})
    assert refused.status_code == 401
    assert status_on_both(workers, token_for(first, "max", NEW_PASSWORD)) == [200, 200]


def test_the_set_password_command_revokes_and_is_audited(
    workers: tuple[TestClient, TestClient], shared_settings: Settings
) -> None:
    first, _ = workers
    user_headers(shared_settings, "practitioner", username="pat")
    token = token_for(first, "pat")
    result = CliRunner().invoke(
        cli,
        ["users", "set-password", "pat"],
        env={
            "TRIAGE_DATABASE_URL": shared_settings.database_url,
            "TRIAGE_NEW_USER_PASSWORD": NEW_PASSWORD,
        },
    )
    assert result.exit_code == 0, result.output
    assert status_on_both(workers, token) == [401, 401]
    too_short = CliRunner().invoke(
        cli,
        ["users", "set-password", "pat"],
        env={
            "TRIAGE_DATABASE_URL": shared_settings.database_url,
            "TRIAGE_NEW_USER_PASSWORD": "short",
        },
    )
    assert too_short.exit_code == 1
    engine = make_engine(shared_settings.database_url)
    try:
        with session_factory(engine)() as session:
            actions = list(session.scalars(select(AuditEventRow.action)))
    finally:
        engine.dispose()
    assert actions.count("user.password_reset") == 1


def test_an_api_key_cannot_sign_out_and_sign_out_is_audited(
    workers: tuple[TestClient, TestClient], shared_settings: Settings
) -> None:
    first, _ = workers
    key = key_headers(shared_settings.database_url, "police-mash-feed")
    refused = first.post("/v1/auth/logout", headers=key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    user_headers(shared_settings, "researcher", username="res")
    assert first.post("/v1/auth/logout", headers=bearer(token_for(first, "res"))).status_code == 204
    engine = make_engine(shared_settings.database_url)
    try:
        with session_factory(engine)() as session:
            logouts = list(
                session.scalars(select(AuditEventRow).where(AuditEventRow.action == "auth.logout"))
            )
    finally:
        engine.dispose()
    assert [event.payload for event in logouts] == [{"channel": "api"}]
