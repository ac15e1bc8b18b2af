"""Credentials for tests: users with roles and API keys, created straight in the store."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING
from unittest import mock

from triage import security
from triage.accounts import create_api_key, create_user
from triage.security import SCOPES, issue_user_token
from triage.settings import Settings
from triage.store import make_engine, session_factory
from triage.vocab import Agency

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
_serial = itertools.count()
_hashes: dict[str, str] = {}


def _hash_once(password: str) -> str:
    """One real argon2 hash per password for the run, shared by the users made here: each hash
    costs ~100 ms of every core, and tests make hundreds of users. Sign-ins still verify it."""
    if password not in _hashes:
        _hashes[password] = security.hash_password(password)
    return _hashes[password]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def user_headers(settings: Settings, *roles: str, username: str | None = None) -> dict[str, str]:
    """Add a user holding ``roles`` and return headers with a signed token for them."""
    engine = make_engine(settings.database_url)
    try:
        with (
            session_factory(engine)() as session,
            mock.patch("triage.accounts.hash_password", _hash_once),
        ):
            user = create_user(
                session,
                username=username or f"{'-'.join(roles)}-{next(_serial)}",
                password=PASSWORD,
                roles=roles,
                actor="test",
            )
            session.commit()
    finally:
        engine.dispose()
    return bearer(issue_user_token(settings.get_secret_key(), user_id=user.user_id))


def key_headers(
    database_url: str,
    source_system: str,
    scopes: Sequence[str] = SCOPES,
    agencies: Sequence[str] = tuple(Agency),
) -> dict[str, str]:
    """Add an API key bound to ``source_system`` and return headers carrying it.

    The key reports for every agency unless ``agencies`` says otherwise (a real key names its
    own: tests/api/test_feed_isolation.py).
    """
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            key = create_api_key(
                session,
                name=f"test {source_system}",
                source_system=source_system,
                scopes=scopes,
                agencies=[str(agency) for agency in agencies],
            )
            session.commit()
    finally:
        engine.dispose()
    return bearer(key.key)


def csrf_of(html: str) -> str:
    """The CSRF token of a page's form."""
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in_page(page: TestClient, settings: Settings, role: str) -> None:
    """Sign ``page`` (a client that keeps cookies) in as a new user holding ``role``."""
    username = f"page-{role}"
    user_headers(settings, role, username=username)
    form = page.get("/login")
    response = page.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(form.text),
              "next": "/queue"},
    )  # fmt: skip
    assert response.status_code == 303, response.text
