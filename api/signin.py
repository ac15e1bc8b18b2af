"""Checking a username and password, for the API's tokens and the pages' sessions alike."""

from __future__ import annotations

from dataclasses import dataclass

from api import audit
from api.deps import ServiceState
from triage.security import verify_password
from triage.store import get_user_by_username


@dataclass(frozen=True)
class SignedIn:
    """A user whose password matched."""

    user_id: str
    roles: tuple[str, ...]


def sign_in(state: ServiceState, *, username: str, password: str, channel: str) -> SignedIn | None:
    """The user when the password matches an active account, else None; audited either way.

    Attempts per username are rate-limited (429), whether the name exists or not.
    """
    state.limits.hit("sign_in", username.casefold())
    with state.read_sessions() as session:
        user = get_user_by_username(session, username=username)
        user_id = user.user_id if user is not None else None
        roles = tuple(sorted(user.roles)) if user is not None else ()
        password_hash = user.password_hash if user is not None and user.active else None
    if user_id is None or not verify_password(password_hash, password):
        # The user id, not the typed username: a mistyped password can be typed as a username.
        audit.record(
            state,
            actor=user_id or "anonymous",
            action="auth.login_failed",
            entity_type="user",
            entity_id=user_id,
            payload={"channel": channel},
        )
        return None
    audit.record(
        state,
        actor=user_id,
        action="auth.login",
        entity_type="user",
        entity_id=user_id,
        payload={"channel": channel},
    )
    return SignedIn(user_id=user_id, roles=roles)
