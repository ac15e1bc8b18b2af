"""Page sessions: a signed, HttpOnly, SameSite cookie holding the user id and a CSRF token.

The cookie is signed (itsdangerous), so it cannot be forged. It carries the moment of sign-in,
kept unchanged whenever the cookie is rewritten, so a session ends a working day after sign-in
however often it is used; signing out records a moment before which every session of that user
is refused (``users.sessions_valid_after``, which ends bearer tokens too), so a copied cookie
dies with the sign-out. The user's roles and active flag are read from the store on every
request. Every POST form carries the session's CSRF token, compared in constant time. Signing
in issues a new session (new token), so a token planted before sign-in is useless. The JSON API
does not read this cookie: it takes bearer credentials only, so it needs no CSRF defence.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from triage.security import TOKEN_MAX_AGE_SECONDS

COOKIE_NAME = "triage_session"
SESSION_SALT = "triage.page-session.v1"
MAX_AGE_SECONDS = TOKEN_MAX_AGE_SECONDS
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class PageSession:
    """What the cookie holds: the signed-in user (if any), the CSRF token, one-off notices."""

    csrf: str
    user_id: str | None = None
    notices: tuple[str, ...] = field(default=())
    signed_in_at: float | None = None
    """Seconds since the epoch when the user signed in (None before sign-in)."""

    def expired(self, now: float) -> bool:
        """True once the session is older than a working day (counted from sign-in)."""
        return self.signed_in_at is None or now - self.signed_in_at > MAX_AGE_SECONDS

    def with_notice(self, notice: str) -> PageSession:
        """The same session with a notice for the next page shown."""
        return replace(self, notices=(*self.notices, notice))


def new_session(user_id: str | None = None, *, signed_in_at: float | None = None) -> PageSession:
    """A fresh session with a new CSRF token; a user's is signed in at ``signed_in_at`` or now."""
    if user_id is None:
        signed_in_at = None
    elif signed_in_at is None:
        signed_in_at = time.time()
    return PageSession(csrf=secrets.token_urlsafe(32), user_id=user_id, signed_in_at=signed_in_at)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SESSION_SALT)


def read_session(request: Request, secret: str) -> PageSession | None:
    """The request's session, or None when there is none or it is forged or expired."""
    raw = request.cookies.get(COOKIE_NAME)
    if not raw or not secret:
        return None
    try:
        data: Any = _serializer(secret).loads(raw, max_age=MAX_AGE_SECONDS)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    user_id = data.get("uid")
    notices = data.get("notices") or []
    signed_in_at = data.get("iat")
    return PageSession(
        csrf=data["csrf"],
        user_id=user_id if isinstance(user_id, str) else None,
        notices=tuple(str(n) for n in notices if isinstance(n, str)),
        signed_in_at=float(signed_in_at) if isinstance(signed_in_at, int | float) else None,
    )


def write_session(response: Response, session: PageSession, secret: str, *, secure: bool) -> None:
    """Set the signed session cookie on ``response``."""
    value = _serializer(secret).dumps(
        {
            "csrf": session.csrf,
            "uid": session.user_id,
            "notices": list(session.notices),
            "iat": session.signed_in_at,
        }
    )
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=MAX_AGE_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def clear_session(response: Response, *, secure: bool) -> None:
    """Remove the session cookie."""
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=secure)


def csrf_matches(session: PageSession | None, submitted: str | None) -> bool:
    """True when the submitted form token is the session's (constant-time comparison)."""
    if session is None or not submitted:
        return False
    return secrets.compare_digest(session.csrf.encode(), submitted.encode())
