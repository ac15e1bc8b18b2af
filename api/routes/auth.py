"""Sign-in for people: a username and password for a signed, expiring bearer token."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api import audit
from api.deps import StateDep
from api.errors import ApiError
from api.schemas import ErrorOut
from triage.security import TOKEN_MAX_AGE_SECONDS, issue_user_token, verify_password
from triage.store import get_user_by_username

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class TokenIn(BaseModel):
    """A user's credentials."""

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class TokenOut(BaseModel):
    """A bearer token for ``Authorization: Bearer <access_token>``."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    roles: list[str]


@router.post(
    "/token",
    response_model=TokenOut,
    responses={
        401: {"model": ErrorOut, "description": "Wrong username or password."},
        422: {"model": ErrorOut, "description": "Missing or malformed fields."},
    },
    summary="Sign in: exchange a username and password for a bearer token",
)
def post_token(body: TokenIn, state: StateDep) -> dict[str, Any]:
    """Check the password (argon2) and issue a token valid for a working day."""
    with state.read_sessions() as session:
        user = get_user_by_username(session, username=body.username)
    password_hash = user.password_hash if user is not None and user.active else None
    if user is None or not verify_password(password_hash, body.password):
        # The user id, not the typed username: a mistyped password can be typed as a username.
        audit.record(
            state,
            actor=user.user_id if user is not None else "anonymous",
            action="auth.login_failed",
            entity_type="user",
            entity_id=user.user_id if user is not None else None,
        )
        raise ApiError(
            401,
            "unauthorised",
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    audit.record(
        state, actor=user.user_id, action="auth.login", entity_type="user", entity_id=user.user_id
    )
    return {
        "access_token": issue_user_token(state.secret_key, user_id=user.user_id),
        "token_type": "bearer",
        "expires_in": TOKEN_MAX_AGE_SECONDS,
        "roles": sorted(user.roles),
    }
