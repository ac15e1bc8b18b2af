"""Audit events for acts that change nothing in the store (views, logins); chain checkpoints."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from service.context import ServiceContext
from triage.store import add_audit_event
from triage.store.auditlog import CheckpointOutcome, checkpoint_chain

log = logging.getLogger(__name__)


def record(
    state: ServiceContext,
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
        add_audit_event(
            session,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            model_version=model_version,
            payload=payload or {},
        )
        session.commit()


class AuditCheckpointer:
    """Signs the audit chain's newest event into the checkpoint file, every few seconds.

    Runs at start-up, every ``Settings.audit_checkpoint_seconds`` and at shut-down, in each
    worker (writers queue on the file's lock, and only a newer event replaces the file). A
    chain that no longer extends the checkpoint is logged as an error and never signed.
    """

    def __init__(self, state: ServiceContext) -> None:
        self.state = state
        self.path = state.settings.audit_checkpoint_path()
        self.interval = state.settings.audit_checkpoint_seconds
        self.key = state.settings.get_audit_key() if self.interval > 0 else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
        self._refusal: str | None = None

    def start(self) -> None:
        """Begin checkpointing (nothing when the interval is 0)."""
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write a last checkpoint."""
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self.checkpoint()

    def _run(self) -> None:
        self.checkpoint()
        while not self._stop.wait(self.interval):
            self.checkpoint()

    def checkpoint(self) -> CheckpointOutcome | None:
        """One checkpoint; failures are logged (ids and reasons only), never raised."""
        assert self.key is not None
        try:
            with self.state.read_sessions() as session:
                outcome = checkpoint_chain(session, self.path, self.key)
        except Exception as exc:
            log.warning("audit checkpoint failed: %s", type(exc).__name__)
            return None
        if outcome.refused is not None:
            if outcome.refused != self._refusal:  # once per finding, not every minute
                log.error(
                    json.dumps({"event": "audit_chain_unanchored", "reason": outcome.refused})
                )
            self._refusal = outcome.refused
        else:
            self._refusal = None
        return outcome
