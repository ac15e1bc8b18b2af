"""Signing a new store's audit chain, shared by the root conftest and the retention tests.

A module of its own: ``from conftest import ...`` is ambiguous once a package of tests has a
conftest of its own (tests/models/fairness/conftest.py).
"""

from __future__ import annotations

from triage.settings import Settings
from triage.store import make_engine, session_factory
from triage.store.auditlog import checkpoint_chain


def anchor_new_chain(settings: Settings) -> None:
    """Sign the new store's empty audit chain, as ``triage db upgrade`` does."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            key = settings.get_audit_key()
            assert key is not None
            checkpoint_chain(session, settings.audit_checkpoint_path(), key)
    finally:
        engine.dispose()
