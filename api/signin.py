"""Checking a username and password, for the API's tokens and the pages' sessions alike."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from api import audit
from api.deps import ServiceState
from triage.security import verify_password
from triage.store import get_user_by_username


@dataclass(frozen=True)
class SignedIn:
    """A user whose password matched."""

    user_id: str
    roles: tuple[str, ...]


def sign_in(
    state: ServiceState, *, username: str, password: str, client: str, channel: str
) -> SignedIn | None:
    """The user when the password matches an active account, else None; audited either way.

    Failed attempts are limited per username from one client address (so nobody elsewhere can
    lock a practitioner out) and per client address across usernames (password spraying);
    past either limit the answer is 429 before the password is checked.
    """
    name_here = f"{username.casefold()}\x00{client}"
    state.limits.refuse_if_spent("sign_in_client", client)
    state.limits.refuse_if_spent("sign_in", name_here)
    with state.read_sessions() as session:
        user = get_user_by_username(session, username=username)
        user_id = user.user_id if user is not None else None
        roles = tuple(sorted(user.roles)) if user is not None else ()
        password_hash = user.password_hash if user is not None and user.active else None
    if user_id is None or not verify_password(password_hash, password):
        state.limits.count("sign_in_client", client)
        state.limits.count("sign_in", name_here)
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


def client_address(request: Request) -> str:
    """The caller's address as uvicorn saw it (behind a trusted proxy, the forwarded one)."""
    return request.client.host if request.client is not None else "unknown"
