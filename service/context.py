"""What a service function needs from the running app: settings, sessions and the model."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from service.champion import ModelHolder
from service.linker import Resolver
from triage.settings import Settings


class ServiceContext(Protocol):
    """The part of the app's state the service layer reads (``api.deps.ServiceState`` is one)."""

    @property
    def settings(self) -> Settings:
        """The service's settings."""
        ...

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions that write."""
        ...

    @property
    def read_sessions(self) -> sessionmaker[Session]:
        """Sessions that only read (a replica or a second pool)."""
        ...

    @property
    def models(self) -> ModelHolder:
        """The champion model, swapped whole on a reload."""
        ...

    @property
    def identity(self) -> Resolver | None:
        """The linker that resolves a child sent without an id (None: not available)."""
        ...
