"""Audit events for acts that change nothing in the store: views and logins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.deps import ServiceState
from triage.store import append_audit_event


def record(
    state: ServiceState,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    model_version: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Append one audit event in its own transaction (ids and counts only, never names)."""
    with state.sessions() as session:
        append_audit_event(
            session,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            model_version=model_version,
            payload=payload or {},
        )
        session.commit()
