"""Dependencies the routes declare: the service state, sessions, the model and the actor.

Access is default-deny: ``current_actor`` answers 401 to a request without a valid bearer
credential (an API key or a signed user token), and ``require_roles``/``require_scope`` answer
403 to an actor without the role or scope a route names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.ratelimit import RateLimits
from api.schemas import ErrorOut
from service.champion import LoadedModel, ModelHolder
from service.linker import Resolver
from triage.security import hash_api_key, is_api_key, read_user_token, revoked
from triage.settings import Settings
from triage.store import get_api_key_by_hash, get_user

ROLES = ("referrer", "practitioner", "manager", "researcher", "admin")

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No valid bearer credential."},
    403: {"model": ErrorOut, "description": "The caller's role or scope does not allow this."},
    429: {"model": ErrorOut, "description": "Over the caller's rate limit; see Retry-After."},
    503: {"model": ErrorOut, "description": "No reply within the request timeout; safe to retry."},
}
"""Declared on every router that needs a caller."""


@dataclass
class ServiceState:
    """What the app holds for its lifetime: settings, engines, session factories, the model."""

    settings: Settings
    engine: Engine
    read_engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    models: ModelHolder
    limits: RateLimits
    intake_executor: ThreadPoolExecutor
    """Where intakes are stored and scored, ``Settings.intake_concurrency()`` at once."""
    loop_read_sessions: sessionmaker[Session] | None = None
    """Read sessions the event loop itself may use (intakes' credential lookups on SQLite):
    one connection, used by the loop thread only, so a checkout never waits for another."""
    intakes_in_flight: int = 0
    """Intakes handed to the executor and not yet answered (read and written on the loop)."""
    background: list[object] = field(default_factory=list)
    identity: Resolver | None = None
    """The linker for children sent without an id (``triage.identity``); None: fail-safe."""
    secret_key: str = field(default="", repr=False)


T = TypeVar("T")


async def run_intake(state: ServiceState, work: Callable[..., T], /, **kwargs: Any) -> T:
    """Run store-and-score work on the intake executor, in arrival order.

    When nothing else is in flight, the loop first waits up to ``intake_hold_seconds`` for it
    on the spot (``Settings.intake_hold_ms``); past that, or behind another intake, it awaits.
    """
    # An executor of its own rather than the shared thread pool with a limiter: its threads
    # take the next intake as soon as they finish one, without a round trip through the loop.
    call = partial(contextvars.copy_context().run, partial(work, **kwargs))
    hold = state.settings.intake_hold_seconds() if state.intakes_in_flight == 0 else 0.0
    state.intakes_in_flight += 1
    try:
        future = state.intake_executor.submit(call)
        if hold > 0:
            with contextlib.suppress(concurrent.futures.TimeoutError):
                return future.result(timeout=hold)
        return await asyncio.wrap_future(future)
    finally:
        state.intakes_in_flight -= 1


@dataclass(frozen=True)
class Actor:
    """Who is calling: the id written to the audit log, their roles, and a key's bindings."""

    name: str
    roles: frozenset[str]
    kind: str = "user"
    scopes: frozenset[str] = frozenset()
    source_system: str | None = None
    agencies: frozenset[str] = frozenset()
    """A key's agencies: the only ones whose events it may post."""

    @property
    def is_key(self) -> bool:
        """True for a referral system's API key."""
        return self.kind == "key"


SYSTEM = Actor(name="system", roles=frozenset(), kind="system")
"""The service itself, for work nobody asked for in a request (scoring the backlog)."""


def get_state(request: Request) -> ServiceState:
    """The app's service state (set up by the lifespan)."""
    state: ServiceState = request.app.state.service  # set by the lifespan
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def write_session(state: StateDep) -> Iterator[Session]:
    """A session for work that writes; the route commits, anything uncommitted rolls back."""
    with state.sessions() as session:
        yield session


def read_session(state: StateDep) -> Iterator[Session]:
    """A session for reads only (on SQLite it takes no write lock)."""
    with state.read_sessions() as session:
        yield session


def current_model(state: StateDep) -> LoadedModel | None:
    """The champion model, or None while there is none."""
    return state.models.current


bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`trk_…`, referral systems) or a token from `POST /v1/auth/token`.",
)


def _unauthorised(message: str) -> Exception:
    from api.errors import ApiError

    return ApiError(401, "unauthorised", message, headers={"WWW-Authenticate": "Bearer"})


def current_actor(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The caller named by the bearer credential; 401 without a valid one."""
    return authenticate(request, state, credentials, state.read_sessions)


def authenticate(
    request: Request,
    state: ServiceState,
    credentials: HTTPAuthorizationCredentials | None,
    sessions: sessionmaker[Session],
) -> Actor:
    """``current_actor``, reading the credential's key or user through ``sessions``."""
    if credentials is None or not credentials.credentials:
        raise _unauthorised("this needs a bearer credential (an API key or a user token)")
    credential = credentials.credentials
    with sessions() as session:
        if is_api_key(credential):
            key = get_api_key_by_hash(session, key_hash=hash_api_key(credential))
            if key is None or not key.active:
                raise _unauthorised("the API key is unknown or revoked")
            actor = Actor(
                name=key.key_id,
                roles=frozenset({"referrer"}),
                kind="key",
                scopes=frozenset(key.scopes),
                source_system=key.source_system,
                agencies=frozenset(key.agencies),
            )
        else:
            token = read_user_token(state.secret_key, credential)
            user = get_user(session, user_id=token.user_id) if token is not None else None
            # Read from the store on every request, so a sign-out or a new password on any
            # worker ends the token on every worker at once.
            if (
                token is None
                or user is None
                or not user.active
                or revoked(token.issued_at, user.sessions_valid_after)
            ):
                raise _unauthorised(
                    "the token is invalid, expired or signed out, or the user is disabled"
                )
            # Roles come from the store on every request, so a change applies at once.
            actor = Actor(name=user.user_id, roles=frozenset(user.roles))
    request.state.actor = actor.name
    state.limits.hit("key" if actor.is_key else "user", actor.name)
    return actor


SessionDep = Annotated[Session, Depends(write_session)]
ReadSessionDep = Annotated[Session, Depends(read_session)]
ModelDep = Annotated[LoadedModel | None, Depends(current_model)]
ActorDep = Annotated[Actor, Depends(current_actor)]


def require_roles(*roles: str) -> Callable[[Actor], Actor]:
    """A dependency admitting an actor with any of ``roles`` (403 otherwise)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")

    def check(actor: ActorDep) -> Actor:
        from api.errors import ApiError

        if not actor.roles & set(roles):
            raise ApiError(403, "forbidden", f"this needs one of the roles: {', '.join(roles)}")
        return actor

    return check


def require_scope(scope: str) -> Callable[[Actor], Actor]:
    """A dependency refusing an API key without ``scope`` (403); users are judged by role."""
    from triage.security import SCOPES

    if scope not in SCOPES:
        raise ValueError(f"unknown scope: {scope}")

    def check(actor: ActorDep) -> Actor:
        from api.errors import ApiError

        if actor.is_key and scope not in actor.scopes:
            raise ApiError(403, "forbidden", f"this API key lacks the scope {scope}")
        return actor

    return check
