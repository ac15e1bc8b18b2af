"""Sign-in for people: a username and password for a signed, expiring bearer token."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.deps import AUTH_RESPONSES, ActorDep, StateDep
from api.errors import ApiError
from api.schemas import ErrorOut
from api.signin import client_address, sign_in
from triage.accounts import sign_out
from triage.security import TOKEN_MAX_AGE_SECONDS, issue_user_token
from triage.store.tables import utcnow

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
        429: {"model": ErrorOut, "description": "Too many attempts; see Retry-After."},
        503: {"model": ErrorOut, "description": "Too many sign-ins at once; see Retry-After."},
    },
    summary="Sign in: exchange a username and password for a bearer token",
)
async def post_token(body: TokenIn, state: StateDep, request: Request) -> TokenOut:
    """Check the password (argon2) and issue a token valid for a working day."""
    user = await sign_in(
        state,
        username=body.username,
        password=body.password,
        client=client_address(request),
        channel="api",
    )
    if user is None:
        raise ApiError(
            401,
            "unauthorised",
            "wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return TokenOut(
        access_token=issue_user_token(
            state.secret_key, user_id=user.user_id, issued_at=user.looked_up_at
        ),
        token_type="bearer",
        expires_in=TOKEN_MAX_AGE_SECONDS,
        roles=list(user.roles),
    )


@router.post(
    "/logout",
    status_code=204,
    responses=AUTH_RESPONSES,
    summary="Sign out everywhere: revoke every token and page session of the caller",
)
def post_logout(actor: ActorDep, state: StateDep) -> Response:
    """End every token and page session the caller was issued until now, on every worker."""
    if actor.is_key:
        raise ApiError(403, "forbidden", "an API key is not signed in; revoke it with triage keys")
    with state.sessions() as db:
        sign_out(db, user_id=actor.name, at=utcnow(), channel="api")
        db.commit()
    return Response(status_code=204)
