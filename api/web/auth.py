"""Who is looking at a page: the session cookie turned into an actor, or a redirect to sign in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Actor, ServiceState, StateDep, get_state
from api.web.sessions import PageSession, csrf_matches, read_session, write_session
from triage.security import revoked
from triage.store import get_user


class SignInRequired(Exception):
    """No signed-in user: the page answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageForbidden(Exception):
    """A signed-in user without a role the page needs."""

    def __init__(self, roles: tuple[str, ...]) -> None:
        super().__init__(", ".join(roles))
        self.roles = roles


class BadFormToken(Exception):
    """A form arrived without the session's CSRF token."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page and their session."""

    actor: Actor
    session: PageSession


def current_session(request: Request, state: StateDep) -> PageSession | None:
    """The request's page session, if it has a valid one."""
    return read_session(request, state.secret_key)


def secure_cookies(request: Request) -> bool:
    """Secure when the settings say so, else whenever the page was served over TLS."""
    forced = get_state(request).settings.secure_cookies
    return forced if forced is not None else request.url.scheme == "https"


def save_session(
    request: Request, response: Response, state: ServiceState, session: PageSession
) -> Response:
    """Write ``session`` to the response's cookie and return the response."""
    write_session(response, session, state.secret_key, secure=secure_cookies(request))
    return response


def redirect(to: str) -> RedirectResponse:
    """303 See Other: after a form, the browser GETs ``to``."""
    return RedirectResponse(to, status_code=303)


def sign_in_redirect(next_path: str) -> RedirectResponse:
    """To the sign-in page, coming back to ``next_path`` (a local path only)."""
    return redirect(f"/login?next={quote(safe_next(next_path), safe='/')}")


def safe_next(next_path: str | None) -> str:
    """A local path to go to after sign-in; anything else (another site) becomes the queue."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//"):
        return "/queue"
    if "\\" in next_path or "://" in next_path:
        return "/queue"
    return next_path


def return_path(request: Request) -> str:
    """Where to come back to after signing in: this page with its query, or for a form the
    page the form is on (a POST cannot be replayed by a redirect)."""
    path = request.url.path
    if request.method != "GET":
        return path.rsplit("/", 1)[0] if path.startswith("/referrals/") else "/queue"
    return f"{path}?{request.url.query}" if request.url.query else path


def require_page_roles(*roles: str) -> Callable[..., Viewer]:
    """A dependency admitting a signed-in user holding any of ``roles``."""

    def check(request: Request, state: StateDep) -> Viewer:
        session = current_session(request, state)
        back_to = return_path(request)
        if session is None or session.user_id is None or session.expired(time.time()):
            raise SignInRequired(back_to)
        with state.read_sessions() as db:
            user = get_user(db, user_id=session.user_id)
            user_roles = frozenset(user.roles) if user is not None and user.active else None
            revoked_after = user.sessions_valid_after if user is not None else None
            request.state.page_username = user.username if user is not None else None
        if user_roles is None or revoked(session.signed_in_at, revoked_after):
            raise SignInRequired(back_to)
        actor = Actor(name=session.user_id, roles=user_roles)
        request.state.actor = actor.name
        state.limits.hit("user", actor.name)
        request.state.page_actor = actor
        if not actor.roles & set(roles):
            raise PageForbidden(roles)
        return Viewer(actor=actor, session=session)

    return check


def check_form_token(viewer: Viewer, submitted: str | None) -> None:
    """Refuse a form whose CSRF token is not the session's."""
    if not csrf_matches(viewer.session, submitted):
        raise BadFormToken()


CaseworkViewer = Annotated[Viewer, Depends(require_page_roles("practitioner", "manager", "admin"))]
ManagerViewer = Annotated[Viewer, Depends(require_page_roles("manager", "admin"))]
