"""Server-rendered pages for front-door teams: sign-in, the queue, a referral, team learning."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.web import (
    case_pages,
    check_pages,
    decision_pages,
    dispute_pages,
    identity_pages,
    research_pages,
    review_pages,
    signin_pages,
    team_pages,
)
from api.web.auth import (
    BadFormToken,
    PageForbidden,
    SignInRequired,
    current_session,
    redirect,
    sign_in_redirect,
)
from api.web.render import STATIC_DIR, page


def install_pages(app: FastAPI) -> None:
    """Add the page routes, their static files and their error pages."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    pages = (
        signin_pages,
        case_pages,
        decision_pages,
        identity_pages,
        team_pages,
        check_pages,
        research_pages,
        dispute_pages,
        review_pages,
    )
    for module in pages:
        app.include_router(module.router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(exc.next_path)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        actor = getattr(request.state, "page_actor", None)
        home = research_pages.home_for(actor.roles if actor is not None else ())
        if request.url.path == research_pages.QUEUE_PATH and home != research_pages.QUEUE_PATH:
            return redirect(home)  # a researcher's start page, not a 403 they cannot leave
        return error_page(
            request,
            403,
            "You cannot open this page",
            "Your account does not have a role that can see it. Ask an administrator if you "
            "need it for your work.",
            home=home,
        )

    @app.exception_handler(BadFormToken)
    async def _bad_token(request: Request, exc: BadFormToken) -> Response:
        return error_page(
            request,
            403,
            "This form has expired",
            "The form was not sent from this service's page, or your session changed. "
            "Go back, reload the page and try again. Nothing was recorded.",
        )


def error_page(
    request: Request, status_code: int, title: str, message: str, *, home: str = "/queue"
) -> Response:
    """An HTML error page (for pages; the API answers errors in JSON)."""
    session = current_session(request, request.app.state.service)
    return page(
        request,
        "error.html",
        session=session,
        status_code=status_code,
        title=title,
        message=message,
        home=home,
    )
