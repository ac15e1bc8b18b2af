"""Sign-in limits hold under concurrency and bound the argon2 work a burst can cause.

The password hasher is replaced by one that holds every check until the test lets it go, so
that concurrent attempts really overlap: no test here depends on timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from access_helpers import PASSWORD, user_headers
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from triage import security
from triage.accounts import set_password
from triage.settings import Settings
from triage.store import UserRow, make_engine, session_factory
from triage.store.migrate import upgrade

PATIENCE_SECONDS = 30.0
"""How long to wait for requests to reach the point under test (only a failing run waits)."""


class HeldHasher:
    """The real argon2 hasher, with every ``verify`` held until ``release`` is set."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()
        self.checked: list[str] = []
        self.active = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        """Hash as argon2 does."""
        return self.real.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Record the check, wait to be released, then verify for real."""
        with self._lock:
            self.checked.append(password_hash)
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        try:
            self.release.wait(PATIENCE_SECONDS)
            return self.real.verify(password_hash, password)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> HeldHasher:
    """The held hasher, in place of the service's."""
    held = HeldHasher(security._hasher)
    monkeypatch.setattr(security, "_hasher", held)
    return held


def make_settings(tmp_path: Path, **limits: Any) -> Settings:
    """Settings on a fresh SQLite database with the given limits."""
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade(url)
    return Settings(
        var_dir=tmp_path,
        database_url=url,
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db",
        **limits,
    )


@pytest.fixture
def app_for(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Start the app with some limits; closed at the end of the test."""
    clients: list[TestClient] = []

    def start(**limits: Any) -> TestClient:
        settings = make_settings(tmp_path, **limits)
        app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds or patience runs out (the assertions then decide)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def attempt(client: TestClient, username: str, password: str = "a wrong guess") -> Any:
    """One API sign-in."""
    return client.post("/v1/auth/token", json={"username": username, "password": password})


def test_concurrent_wrong_passwords_past_the_limit_get_429(
    app_for: Callable[..., TestClient], hasher: HeldHasher
) -> None:
    client = app_for(
        rate_limit_sign_in="5/minute",
        rate_limit_sign_in_client="1000/minute",
        sign_in_checks=20,
        sign_in_checks_per_client=64,
    )
    user_headers(client.app.state.service.settings, "practitioner", username="pat")
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(attempt, client, "pat") for _ in range(20)]
        # Every attempt is either answered already or held in its password check.
        wait_until(lambda: sum(f.done() for f in futures) + hasher.active >= 20)
        hasher.release.set()
        statuses = sorted(f.result().status_code for f in futures)
    assert statuses == [401] * 5 + [429] * 15
    assert len(hasher.checked) == 5


def test_one_address_has_a_few_sign_ins_in_progress_at_most(
    app_for: Callable[..., TestClient], hasher: HeldHasher
) -> None:
    client = app_for(
        rate_limit_sign_in_client="1000/minute",
        sign_in_checks=8,
        sign_in_checks_per_client=2,
    )
    with ThreadPoolExecutor(7) as pool:
        burst = [pool.submit(attempt, client, f"user-{n}") for n in range(6)]
        wait_until(lambda: sum(f.done() for f in burst) >= 4 and hasher.active >= 2)
        refused = [f.result() for f in burst if f.done()]
        # Another address is not held up by this one's burst (no ``with``: the same service).
        elsewhere = TestClient(client.app, client=("10.0.0.7", 4000))
        other = pool.submit(attempt, elsewhere, "someone")
        wait_until(lambda: hasher.active >= 3)
        active_with_other = hasher.active
        hasher.release.set()
        assert other.result().status_code == 401
        statuses = sorted(f.result().status_code for f in burst)
    assert statuses == [401, 401, 429, 429, 429, 429]
    assert active_with_other == 3
    assert all(r.json()["error"]["code"] == "rate_limited" for r in refused)
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)


def waiting_for_a_check(client: TestClient) -> int:
    """Sign-ins waiting for a password-check slot (0 where there is no such bound)."""
    limits = client.app.state.service.limits
    passwords = getattr(limits, "passwords", None)
    return 0 if passwords is None else passwords._slots.statistics().tasks_waiting


def test_a_worker_checks_a_bounded_number_of_passwords_at_once(
    app_for: Callable[..., TestClient], hasher: HeldHasher
) -> None:
    client = app_for(
        rate_limit_sign_in_client="1000/minute",
        sign_in_checks=1,
        sign_in_checks_per_client=64,
    )
    with ThreadPoolExecutor(4) as pool:
        burst = [pool.submit(attempt, client, f"user-{n}") for n in range(4)]
        wait_until(lambda: hasher.active + waiting_for_a_check(client) >= 4)
        hasher.release.set()
        statuses = [f.result().status_code for f in burst]
    # They queued (holding no thread) and were all answered, one check at a time.
    assert statuses == [401] * 4
    assert hasher.most_at_once == 1
    assert len(hasher.checked) == 4


def test_a_sign_in_that_cannot_get_a_check_in_time_gets_503(
    app_for: Callable[..., TestClient], hasher: HeldHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.ratelimit.PASSWORD_WAIT_SECONDS", 0.05)
    client = app_for(sign_in_checks=1, sign_in_checks_per_client=64)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(attempt, client, "first")
        wait_until(lambda: hasher.active >= 1)
        second: Future[Any] = pool.submit(attempt, client, "second")
        wait_until(second.done)
        hasher.release.set()
        assert first.result().status_code == 401
        busy = second.result()
    assert busy.status_code == 503
    assert busy.json()["error"]["code"] == "unavailable"
    assert busy.headers["Retry-After"] == "1"


def test_unknown_and_disabled_users_run_the_same_password_check(
    app_for: Callable[..., TestClient], hasher: HeldHasher
) -> None:
    hasher.release.set()
    client = app_for()
    settings = client.app.state.service.settings
    user_headers(settings, "practitioner", username="pat")
    user_headers(settings, "practitioner", username="gone")
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine).begin() as session:
            session.execute(update(UserRow).where(UserRow.username == "gone").values(active=False))
    finally:
        engine.dispose()

    assert attempt(client, "pat").status_code == 401
    assert len(hasher.checked) == 1 and hasher.checked[0].startswith("$argon2id$")
    assert attempt(client, "nobody-by-this-name").status_code == 401
    assert attempt(client, "gone", PASSWORD).status_code == 401
    # One argon2 check each, with the same parameters: the unknown name is not answered early.
    assert len(hasher.checked) == 3
    assert hasher.checked[1:] == [security._DUMMY_HASH] * 2
    assert {h.rsplit("$", 2)[0] for h in hasher.checked} == {hasher.checked[0].rsplit("$", 2)[0]}
    assert attempt(client, "pat", PASSWORD).status_code == 200


def test_a_new_password_set_while_a_sign_in_is_checked_revokes_its_token(
    app_for: Callable[..., TestClient], hasher: HeldHasher
) -> None:
    # The account is read, then its (old) password is checked: a new password set in between
    # must revoke the token that check yields, not be outlived by it.
    client = app_for()
    settings = client.app.state.service.settings
    user_headers(settings, "practitioner", username="pat")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(attempt, client, "pat", PASSWORD)
        wait_until(lambda: len(hasher.checked) == 1)
        time.sleep(0.01)  # the new password's moment is strictly after the account was read
        engine = make_engine(settings.database_url)
        try:
            with session_factory(engine)() as session:
                set_password(session, username="pat", password="a brand new passphrase")
                session.commit()
        finally:
            engine.dispose()
        hasher.release.set()
        reply = pending.result(PATIENCE_SECONDS)
    assert reply.status_code == 200, reply.text
    token = reply.json()["access_token"]
    queue = client.get("/v1/queue", headers={"Authorization": f"Bearer {token}"})
    assert queue.status_code == 401, queue.text
