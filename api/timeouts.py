"""Request timeouts: a reply that has not started within the limit becomes a 503."""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body, is_page_request, page_error

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class TimeoutMiddleware:
    """Answer 503 when a request has not begun its reply within ``seconds``.

    The work itself is not cancelled (a thread cannot be stopped safely, and a half-finished
    transaction is worse than a late one): it runs to the end and its reply is dropped. Every
    write route is safe to retry (idempotency keys, business keys, 409 on a second decision), so
    a client that retries after the 503 gets the stored result, never a duplicate.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; past the limit with nothing sent, reply 503 in its place."""
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = False
        abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if abandoned:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if task in done or started:
            await task
            return
        abandoned = True
        task.add_done_callback(_log_late_failure)
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        log.warning(
            json.dumps({"event": "request_timeout", "route": route, "after_s": self.seconds})
        )
        request = Request(scope)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if is_page_request(request):
            response = page_error(request, 503, None)
            response.headers.update(headers)
        else:
            message = f"no reply within {self.seconds:g} s; it is safe to retry"
            response = JSONResponse(
                error_body("timeout", message), status_code=503, headers=headers
            )
        await response(scope, receive, send)


def _log_late_failure(task: asyncio.Future[None]) -> None:
    """Work abandoned by a timeout that later failed: log the type only (no request data)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("request failed after its timeout: %s", type(task.exception()).__name__)
