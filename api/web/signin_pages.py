"""Signing in and out of the pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.deps import StateDep
from api.signin import client_address, sign_in
from api.web.auth import (
    BadFormToken,
    current_session,
    redirect,
    safe_next,
    save_session,
    secure_cookies,
)
from api.web.render import page
from api.web.research_pages import QUEUE_PATH, home_for
from api.web.sessions import clear_session, csrf_matches, new_session
from triage.accounts import sign_out
from triage.store import get_user
from triage.store.tables import utcnow

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, state: StateDep) -> Response:
    """The front page: the queue, or for a researcher the research page."""
    session = current_session(request, state)
    roles: tuple[str, ...] = ()
    if session is not None and session.user_id is not None:
        with state.read_sessions() as db:
            user = get_user(db, user_id=session.user_id)
            roles = tuple(user.roles) if user is not None and user.active else ()
    return redirect(home_for(roles))


@router.get("/login")
def login_form(request: Request, state: StateDep, next: str | None = None) -> Response:
    """The sign-in form (a session cookie carries its CSRF token)."""
    existing = current_session(request, state)
    session = existing or new_session()
    response = page(
        request, "login.html", session=session, next_path=safe_next(next), username="", error=None
    )
    # An existing session is shown as it is: rewriting it would restamp the cookie.
    return response if existing is not None else save_session(request, response, state, session)


@router.post("/login")
async def login(
    request: Request,
    state: StateDep,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=500)] = "/queue",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Check the password; on success start a new session and go where the user was going."""
    session = current_session(request, state)
    if not csrf_matches(session, csrf_token):
        raise BadFormToken()
    user = None
    if username and password:
        user = await sign_in(
            state,
            username=username,
            password=password,
            client=client_address(request),
            channel="page",
        )
    if user is None:
        fresh = new_session()
        response = page(
            request,
            "login.html",
            session=fresh,
            status_code=401 if username and password else 422,
            next_path=safe_next(next_path),
            username=username,
            error="Enter your username and password"
            if not (username and password)
            else "The username or password is not right",
        )
        return save_session(request, response, state, fresh)
    # A new session (and CSRF token) at sign-in: nothing planted before it carries over.
    signed_in = new_session(user.user_id, signed_in_at=user.looked_up_at)
    target = safe_next(next_path)
    if target == QUEUE_PATH:  # the default: each role starts on its own page
        target = home_for(user.roles)
    return save_session(request, redirect(target), state, signed_in)


@router.post("/logout")
def logout(
    request: Request,
    state: StateDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """End the session, and every other session and bearer token of the user."""
    session = current_session(request, state)
    if not csrf_matches(session, csrf_token):
        raise BadFormToken()
    if session is not None and session.user_id is not None:
        with state.sessions() as db:
            sign_out(db, user_id=session.user_id, at=utcnow())
            db.commit()
    response = redirect("/login")
    clear_session(response, secure=secure_cookies(request))
    return response
