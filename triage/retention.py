"""A retention run: each kind's cut-off from its configured period, what is past it, and (when
applied) its removal, one audited transaction per kind (see ``triage.store.retention``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from triage.store.audit import add_audit_event
from triage.store.audit_retention import expire_audit_events, expiring_prefix
from triage.store.engine import session_factory
from triage.store.retention import (
    AUDIT_LOG,
    EVENTS,
    IDEMPOTENCY_KEYS,
    IDENTITY_TASKS,
    KEPT,
    PEOPLE,
    REFERRALS,
    cutoff_for,
    delete_events,
    delete_idempotency_keys,
    delete_identity_tasks,
    delete_orphaned_people,
    delete_referrals,
    expired_events,
    expired_idempotency_keys,
    expired_identity_tasks,
    expired_referrals,
)

Advance = Callable[[int], None]
StartKind = Callable[[str, int], Advance]
"""Called as each kind starts with how many records it removes; returns a progress callback."""

KIND_ACTION = "retention.expired"
RUN_ACTION = "retention.applied"

CLOCKS: dict[str, str] = {
    REFERRALS: "the referral's closing decision (its latest decision)",
    EVENTS: "when the agency event occurred; kept while a stored referral received after it "
    "is about its child or household (it could have been scored on it) or a dispute names it",
    IDENTITY_TASKS: "when the identity task was confirmed or rejected",
    IDEMPOTENCY_KEYS: "when the key was first used",
    PEOPLE: "none of their own: once no referral or event refers to them or their household",
    AUDIT_LOG: "when the audit event was written; kept while the referral or identity task "
    "it is about is stored (and every later event, so the chain stays whole)",
}
"""The date each kind's period runs from (the docs and the DPIA quote these)."""

WHAT: dict[str, str] = {
    REFERRALS: "a decided referral with its decisions, outcome, scores and reasons, disputes, "
    "checks, strategy discussions, sign-offs and priority judgements",
    EVENTS: "a partner agency's record about a child, household or adult",
    IDENTITY_TASKS: 'a confirmed or rejected "possible same person" task',
    IDEMPOTENCY_KEYS: "a client's idempotency key and the reply it replays",
    PEOPLE: "children, adults, households, memberships, identity records and merges",
    AUDIT_LOG: "the hash-chained audit log (ids and actions, no names or free text)",
}


def retention_schedule(periods: Mapping[str, int]) -> list[dict[str, str]]:
    """The configured schedule in words, one row per kind (for the DPIA and the docs)."""
    rows = []
    for kind in (REFERRALS, EVENTS, IDENTITY_TASKS, IDEMPOTENCY_KEYS, PEOPLE, AUDIT_LOG):
        if kind == PEOPLE:
            expiring = max(periods[REFERRALS], periods[EVENTS]) != KEPT
            kept = "until nothing refers to them" if expiring else "indefinitely"
        else:
            kept = "indefinitely" if periods[kind] == KEPT else f"{periods[kind]} days"
        rows.append({"kind": kind, "what": WHAT[kind], "kept": kept, "from": CLOCKS[kind]})
    return rows


@dataclass(frozen=True)
class KindOutcome:
    """One kind in a run: its period and cut-off, and the rows removed (or that would be)."""

    kind: str
    period_days: int
    cutoff: datetime | None
    records: int
    rows: dict[str, int] = field(default_factory=dict)
    refused: str | None = None

    def document(self) -> dict[str, Any]:
        """The outcome as the audit entry records it (counts and dates, no personal data)."""
        return {
            "period_days": self.period_days,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "records": self.records,
            "rows": dict(sorted(self.rows.items())),
            "refused": self.refused,
        }


@dataclass(frozen=True)
class RetentionRun:
    """A whole run: dry or applied, at ``now``, one outcome per kind."""

    run_id: str
    now: datetime
    applied: bool
    kinds: list[KindOutcome]

    def document(self) -> dict[str, Any]:
        """The run as the ``retention.applied`` audit entry records it."""
        return {
            "run": self.run_id,
            "now": self.now.isoformat(),
            "applied": self.applied,
            "kinds": {kind.kind: kind.document() for kind in self.kinds},
        }

    @property
    def refused(self) -> list[KindOutcome]:
        """The kinds that were not applied, and why."""
        return [kind for kind in self.kinds if kind.refused]


@dataclass(frozen=True)
class AuditLogTarget:
    """Where the audit checkpoint lives and its key (the audit log's kind needs both)."""

    checkpoint_path: Path
    key: str


_Finder = Callable[[Session, datetime], Sequence[Any]]
_Deleter = Callable[[Session, Sequence[Any], Advance | None], dict[str, int]]

_RECORD_KINDS: tuple[tuple[str, _Finder, _Deleter], ...] = (
    (REFERRALS, expired_referrals, delete_referrals),
    (EVENTS, expired_events, delete_events),
    (IDENTITY_TASKS, expired_identity_tasks, delete_identity_tasks),
    (IDEMPOTENCY_KEYS, expired_idempotency_keys, delete_idempotency_keys),
)


def run_retention(
    engine: Engine,
    periods: Mapping[str, int],
    now: datetime,
    *,
    apply: bool,
    actor: str,
    audit_log: AuditLogTarget,
    start_kind: StartKind | None = None,
) -> RetentionRun:
    """Remove (``apply``) or count (a dry run, rolled back) every kind's expired records.

    A dry run does exactly what an apply does in one transaction, then rolls it back, so its
    figures are the apply's (people only become unreferenced once referrals and events go);
    it writes nothing, not even to the audit log.
    """
    run_id = uuid.uuid4().hex
    maker = session_factory(engine)
    outcomes: list[KindOutcome] = []
    with maker() as dry:

        @contextmanager
        def transaction() -> Iterator[Session]:
            """A transaction of its own per kind when applying; the one rolled back if not."""
            if not apply:
                yield dry
                return
            with maker.begin() as session:
                yield session

        def record(session: Session, outcome: KindOutcome) -> None:
            if apply:
                _audit_kind(session, actor, run_id, outcome)
            outcomes.append(outcome)

        for kind, finder, deleter in _RECORD_KINDS:
            cutoff = cutoff_for(now, periods[kind])
            if cutoff is None:
                outcomes.append(KindOutcome(kind, periods[kind], None, 0))
                continue
            with transaction() as session:
                keys = finder(session, cutoff)
                advance = start_kind(kind, len(keys)) if start_kind is not None else None
                rows = deleter(session, keys, advance)
                record(session, KindOutcome(kind, periods[kind], cutoff, len(keys), rows))
        # People have no period: they go once nothing refers to them, when records expire.
        people_period = max(periods[REFERRALS], periods[EVENTS])
        if people_period == KEPT:
            outcomes.append(KindOutcome(PEOPLE, KEPT, None, 0))
        else:
            with transaction() as session:
                rows = delete_orphaned_people(session)
                removed = rows.get("persons", 0) + rows.get("households", 0)
                record(session, KindOutcome(PEOPLE, people_period, None, removed, rows))
        outcomes.append(_audit_log(dry, engine, periods[AUDIT_LOG], now, apply=apply,
                                   actor=actor, run_id=run_id, target=audit_log))  # fmt: skip
        dry.rollback()
    run = RetentionRun(run_id, now, apply, outcomes)
    if apply:
        with maker.begin() as session:
            add_audit_event(
                session,
                actor=actor,
                action=RUN_ACTION,
                entity_type="retention",
                payload=run.document(),
            )
    return run


def _audit_log(
    dry: Session,
    engine: Engine,
    period: int,
    now: datetime,
    *,
    apply: bool,
    actor: str,
    run_id: str,
    target: AuditLogTarget,
) -> KindOutcome:
    cutoff = cutoff_for(now, period)
    if cutoff is None:
        return KindOutcome(AUDIT_LOG, period, None, 0)
    if not apply:
        found = expiring_prefix(dry, cutoff)
        return KindOutcome(AUDIT_LOG, period, cutoff, found.events, {"audit_events": found.events})
    done = expire_audit_events(
        engine,
        cutoff,
        checkpoint_path=target.checkpoint_path,
        key=target.key,
        actor=actor,
        payload={"run": run_id, "period_days": period},
    )
    return KindOutcome(
        AUDIT_LOG, period, cutoff, done.events, {"audit_events": done.events}, done.refused
    )


def _audit_kind(session: Session, actor: str, run_id: str, outcome: KindOutcome) -> None:
    """Record a kind's removal in the same transaction (nothing removed, nothing recorded)."""
    if not any(outcome.rows.values()):
        return
    add_audit_event(
        session,
        actor=actor,
        action=KIND_ACTION,
        entity_type="retention",
        entity_id=outcome.kind,
        payload={"run": run_id} | outcome.document(),
    )
