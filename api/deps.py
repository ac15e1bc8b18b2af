"""Dependencies the routes declare: the service state, sessions, the model and the actor.

Access control (the next issue) replaces ``current_actor`` and tightens ``require_roles``;
the routes already name the roles they will need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.champion import LoadedModel, ModelHolder
from triage.settings import Settings

ROLES = ("referrer", "practitioner", "manager", "researcher", "admin")


@dataclass
class ServiceState:
    """What the app holds for its lifetime: settings, engines, session factories, the model."""

    settings: Settings
    engine: Engine
    read_engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    models: ModelHolder
    background: list = field(default_factory=list)


@dataclass(frozen=True)
class Actor:
    """Who is calling: the name written to the audit log, and their roles."""

    name: str
    roles: frozenset[str]


ANONYMOUS = Actor(name="anonymous", roles=frozenset(ROLES))
"""Until access control lands every caller is this actor, holding every role."""


def get_state(request: Request) -> ServiceState:
    """The app's service state (set up by the lifespan)."""
    return request.app.state.service


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


def current_actor() -> Actor:
    """The caller (a fixed anonymous actor until access control lands)."""
    return ANONYMOUS


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
