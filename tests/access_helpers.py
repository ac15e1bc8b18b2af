"""Credentials for tests: users with roles and API keys, created straight in the store."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from triage.accounts import create_api_key, create_user
from triage.security import SCOPES, issue_user_token
from triage.settings import Settings
from triage.store import make_engine, session_factory
from triage.vocab import Agency

PASSWORD = "correct horse battery staple"
_serial = itertools.count()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def user_headers(settings: Settings, *roles: str, username: str | None = None) -> dict[str, str]:
    """Add a user holding ``roles`` and return headers with a signed token for them."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
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
