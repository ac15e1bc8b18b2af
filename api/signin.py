"""Checking a username and password, for the API's tokens and the pages' sessions alike."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio
from fastapi import Request

from api.deps import ServiceState
from service import audit
from triage.security import verify_password
from triage.store import get_user_by_username


@dataclass(frozen=True)
class SignedIn:
    """A user whose password matched."""

    user_id: str
    roles: tuple[str, ...]
    looked_up_at: float
    """When the account was read: its credentials date from then, so a new password or a
    sign-out after it (while the password was being checked) revokes them."""


@dataclass(frozen=True)
class _Attempt:
    """A counted sign-in attempt and the account it names (if any)."""

    name_here: str
    user_id: str | None
    roles: tuple[str, ...]
    password_hash: str | None
    """None for an unknown or disabled user: checked against a dummy hash all the same."""
    looked_up_at: float


async def sign_in(
    state: ServiceState, *, username: str, password: str, client: str, channel: str
) -> SignedIn | None:
    """The user when the password matches an active account, else None; audited either way.

    Attempts are limited per username from one client address (so nobody elsewhere can lock a
    practitioner out) and per client address across usernames (password spraying). Each
    attempt is counted before its password is checked, atomically, so concurrent guesses
    cannot all pass a check made before any of them was counted; past either limit the answer
    is 429 with no password checked. A success clears its username's count. One address has
    at most ``sign_in_checks_per_client`` sign-ins in progress, and a worker checks at most
    ``sign_in_checks`` passwords at once (``RateLimits.passwords``).
    """
    checks = state.limits.passwords
    with checks.admit(client):
        # Off the event loop: the limiter may be Redis, and the lookup reads the store.
        attempt = await anyio.to_thread.run_sync(_count_and_look_up, state, username, client)
        # Unknown and disabled users run the same argon2 check (on a dummy hash), so the reply
        # time does not tell whether a username exists.
        matched = await checks.run(verify_password, attempt.password_hash, password)
        return await anyio.to_thread.run_sync(_conclude, state, attempt, matched, channel)


def _count_and_look_up(state: ServiceState, username: str, client: str) -> _Attempt:
    """Count the attempt against both limits (429 past either), then find the account."""
    name_here = f"{username.casefold()}\x00{client}"
    state.limits.hit("sign_in_client", client)
    state.limits.hit("sign_in", name_here)
    looked_up_at = time.time()  # before the read: a change after it must revoke what follows
    with state.read_sessions() as session:
        user = get_user_by_username(session, username=username)
        return _Attempt(
            looked_up_at=looked_up_at,
            name_here=name_here,
            user_id=user.user_id if user is not None else None,
            roles=tuple(sorted(user.roles)) if user is not None else (),
            password_hash=user.password_hash if user is not None and user.active else None,
        )


def _conclude(
    state: ServiceState, attempt: _Attempt, matched: bool, channel: str
) -> SignedIn | None:
    """Record the outcome; a success clears the username's count of attempts."""
    user_id = attempt.user_id
    if user_id is None or not matched:
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
    state.limits.forgive("sign_in", attempt.name_here)
    audit.record(
        state,
        actor=user_id,
        action="auth.login",
        entity_type="user",
        entity_id=user_id,
        payload={"channel": channel},
    )
    return SignedIn(user_id=user_id, roles=attempt.roles, looked_up_at=attempt.looked_up_at)


def client_address(request: Request) -> str:
    """The caller's address as uvicorn saw it (behind a trusted proxy, the forwarded one)."""
    return request.client.host if request.client is not None else "unknown"
