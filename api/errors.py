"""Error shapes, exception handlers and the request body limit.

Every error body is ``{"error": {"code", "message"}}``; a 422 adds
``"errors": [{"field", "reason"}]`` with the field path as in ``triage.schema.error_fields``.
An error body is bounded whatever the request: at most ``MAX_FIELD_ERRORS`` field errors, each
text cut to ``MAX_ERROR_TEXT`` characters, and ``errors_omitted`` counting the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Conflict, Invalid, NotFound, Refusal
from triage.store.engine import TRANSIENT_REASONS, store_failure

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
STORE_RETRY_AFTER_SECONDS = 30
"""``Retry-After`` when the store cannot take writes (a full disk needs someone to act)."""
BUSY_RETRY_AFTER_SECONDS = 5
MAX_FIELD_ERRORS = 50
"""Field errors listed in one error body; ``errors_omitted`` counts the others."""
MAX_ERROR_TEXT = 300
"""Characters kept of a field path or reason (a reason may quote the input)."""

_CODES = {
    400: "bad_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the service reports on purpose, with a stable code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        errors: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = list(errors) if errors is not None else None
        self.headers = headers


_REFUSAL_STATUS: dict[type[Refusal], int] = {Invalid: 422, NotFound: 404, Conflict: 409}


def status_of(refusal: Refusal) -> int:
    """The HTTP status of a service refusal (422, 404 or 409)."""
    return _REFUSAL_STATUS.get(type(refusal), 400)


def from_refusal(refusal: Refusal) -> ApiError:
    """A service refusal as the error this layer answers."""
    return ApiError(status_of(refusal), refusal.code, refusal.message, refusal.errors)


def not_found(what: str, identifier: str) -> ApiError:
    """A 404 naming what was looked for."""
    return ApiError(404, "not_found", f"no {what} with id {identifier!r}")


def invalid(errors: Sequence[dict[str, str]], message: str = "the request is invalid") -> ApiError:
    """A 422 with field errors."""
    return ApiError(422, "validation_error", message, errors)


def error_body(
    code: str, message: str, errors: Sequence[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The JSON body of every error response."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if errors is not None:
        # A small bad batch could otherwise answer with hundreds of kilobytes of errors.
        body["errors"] = [
            {key: _cut(str(value)) for key, value in error.items()}
            for error in errors[:MAX_FIELD_ERRORS]
        ]
        if len(errors) > MAX_FIELD_ERRORS:
            body["errors_omitted"] = len(errors) - MAX_FIELD_ERRORS
    return body


def _cut(text: str) -> str:
    """``text``, at most ``MAX_ERROR_TEXT`` characters (an ellipsis marks a cut)."""
    if len(text) <= MAX_ERROR_TEXT:
        return text
    return text[: MAX_ERROR_TEXT - 1] + "…"


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "child", "sex")`` as ``child.sex``; query, path and header keep their prefix."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(str(part) for part in parts) or "body"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    return [{"field": field_path(err["loc"]), "reason": err["msg"]} for err in exc.errors()]


class BodyTooLarge(StarletteHTTPException):
    """The request body passed the limit while it was being read."""

    def __init__(self) -> None:
        super().__init__(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")


ErrorPage = Callable[[Request, int, str, str], Response]
"""Renders an HTML error page: request, status, title, message (the pages package has one)."""


def install_error_handlers(app: FastAPI, error_page: ErrorPage) -> None:
    """Make every error, expected or not, take the documented shape (pages: ``error_page``)."""
    # Handed in rather than imported: the pages package depends on this module.
    app.state.error_page = error_page

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if is_page_request(request):
            response = page_error(request, exc.status_code, _PAGE_TITLES.get(exc.status_code))
            response.headers.update(exc.headers or {})
            return response
        return JSONResponse(
            error_body(exc.code, exc.message, exc.errors),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> Response:
        return await _api_error(request, from_refusal(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if is_page_request(request):
            return page_error(request, 422, "Something in the address is not right")
        body = error_body("validation_error", "the request is invalid", _validation_errors(exc))
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if is_page_request(request):
            return page_error(request, exc.status_code, _PAGE_TITLES.get(exc.status_code))
        code = _CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    async def _store_error(request: Request, exc: DBAPIError) -> Response:
        failure = store_failure(exc)
        if failure is None:
            raise exc  # a defect, not the store's state: the 500 handler below logs it
        # Nothing of this request was committed (its transaction failed as a whole), so it is
        # refused, never acknowledged; the same request (or Idempotency-Key) may be retried.
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        log.error(
            json.dumps(
                {"event": "store_unavailable", "method": request.method, "route": route}
                | failure.as_log()
            )
        )
        seconds = (
            BUSY_RETRY_AFTER_SECONDS
            if failure.reason in TRANSIENT_REASONS
            else STORE_RETRY_AFTER_SECONDS
        )
        headers = {"Retry-After": str(seconds)}
        if is_page_request(request):
            response = page_error(request, 503, "Nothing was saved: the service cannot store it")
            response.headers.update(headers)
            return response
        message = (
            f"the store could not take this request ({failure.reason}); nothing was stored, "
            "retry later with the same request"
        )
        return JSONResponse(
            error_body("store_unavailable", message), status_code=503, headers=headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Type and route template only: exception messages and concrete paths can carry ids
        # and personal data from the request.
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, route)
        if is_page_request(request):
            return page_error(request, 500, "Sorry, the service failed")
        return JSONResponse(
            error_body("internal_error", "the service failed; the error has been logged"),
            status_code=500,
        )


_PAGE_TITLES = {
    404: "Page not found",
    405: "This page cannot be used that way",
    413: "What you sent is too large",
    429: "Too many requests: wait a moment and try again",
    503: "The service took too long to answer: try again",
}


def is_page_request(request: Request) -> bool:
    """A browser asking for a page (the API and operations routes always answer JSON)."""
    path = request.url.path
    if path.startswith(("/v1/", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz")):
        return False
    return "text/html" in request.headers.get("accept", "")


def page_error(request: Request, status_code: int, title: str | None) -> Response:
    """The HTML error page, rendered by the page renderer the app was given."""
    error_page: ErrorPage = request.app.state.error_page
    return error_page(
        request,
        status_code,
        title or _PAGE_TITLES.get(status_code) or "Something went wrong",
        "Check the address, or go back and try again. If this keeps happening, tell the team "
        "that runs this service.",
    )


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413: by Content-Length, and while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the bytes actually received."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(send, 400, "bad_request", "Content-Length is not a number")
                return
            if int(declared) > self.max_bytes:
                await self._refuse(send, 413, "body_too_large", BodyTooLarge().detail)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await self._refuse(send, 413, "body_too_large", str(exc.detail))

    async def _refuse(self, send: Send, status: int, code: str, message: str) -> None:
        response = JSONResponse(error_body(code, message), status_code=status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})
