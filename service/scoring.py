"""Scoring stored referrals: explain, apply the safety rules, store, audit, and requeue."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from explain.referral import ExplainedScore, explain_referral
from features.online import online_features
from models.scorer import Scorer
from service.champion import LoadedModel
from service.context import ServiceContext
from triage.queue import (
    ReferralFacts,
    SafetyOutcome,
    apply_safety_rules,
    facts_for,
    look_by,
    queue_sort_key,
    queue_tier,
)
from triage.store import (
    ChildRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
    insert_audit_event,
    insert_queue_entries_if_new,
    insert_score,
    latest_scores,
    open_referrals_missing_from_queue,
    queue_entries_to_score,
    queue_model_version,
    read_referral_facts,
    save_queue_entry,
    upsert_queue_entry,
)
from triage.store.tables import utcnow

log = logging.getLogger(__name__)

QUEUE_REASONS = 3
"""Reasons kept on a queue entry (the queue shows the top 3)."""


def facts_of(
    referral: ReferralRow, child: ChildRow, history: Mapping[str, float] | None = None
) -> ReferralFacts:
    """What the safety rules see of a stored referral (``history``: its signal values)."""
    return referral_facts(referral, child.date_of_birth, history)


class ReferralFields(Protocol):
    """The stored fields of a referral that the safety rules read (a row or a selected row)."""

    # Read-only members: a mapped row's ``list[str]`` is then a ``Sequence[str]``.
    @property
    def received_at(self) -> datetime: ...
    @property
    def injury_reported(self) -> bool: ...
    @property
    def injury_sites(self) -> Sequence[str]: ...
    @property
    def concerns(self) -> Sequence[str]: ...
    @property
    def referrer_relationship(self) -> str | None: ...
    @property
    def injury_photographed(self) -> bool | None: ...


def referral_facts(
    referral: ReferralFields,
    born: date,
    history: Mapping[str, float] | None = None,
) -> ReferralFacts:
    """What the safety rules see of a referral's stored fields, its child's birth and history."""
    return facts_for(
        date_of_birth=born,
        received_at=referral.received_at,
        injury_reported=referral.injury_reported,
        injury_sites=referral.injury_sites,
        concerns=referral.concerns,
        referrer_relationship=referral.referrer_relationship,
        injury_photographed=referral.injury_photographed,
        history=history,
    )


def enqueue(
    session: Session,
    *,
    referral: ReferralRow,
    child: ChildRow,
    score: ScoreRow | None,
    model_band: str | None = None,
) -> QueueEntryRow:
    """Put an open referral in the queue, or move it to where its latest score puts it."""
    entry = queue_entry(
        referral_id=referral.referral_id,
        child_id=referral.child_id,
        received_at=referral.received_at,
        concerns=referral.concerns,
        facts=facts_of(referral, child),
        score=score,
        model_band=model_band,
    )
    return save_queue_entry(session, entry=entry)


def queue_entry(
    *,
    referral_id: str,
    child_id: str,
    received_at: datetime,
    concerns: Sequence[str],
    facts: ReferralFacts,
    score: ScoreRow | None,
    model_band: str | None = None,
) -> dict[str, Any]:
    """The queue entry of an open referral with these facts and this latest score (or none)."""
    if score is None:
        flags = apply_safety_rules(facts, None).flag_codes  # rules need no model
        band = probability = low = high = version = score_id = None
        reasons: list[Any] = []
    else:
        flags, band, probability = list(score.flags), score.band, score.probability
        low, high, version, score_id = (
            score.probability_low,
            score.probability_high,
            score.model_version,
            score.id,
        )
        reasons = list(score.reasons[:QUEUE_REASONS])
    tier = queue_tier(flagged=bool(flags), band=band)
    _, rank_at, sort_probability, _ = queue_sort_key(
        tier=tier,
        rank_at=look_by(received_at, band, tier=tier),
        probability=probability,
        referral_id=referral_id,
    )
    return {
        "referral_id": referral_id,
        "child_id": child_id,
        "received_at": received_at,
        "age_months": facts.age_months,
        "concerns": list(concerns),
        "concerns_key": ";" + ";".join(sorted(concerns)) + ";",
        "flags": flags,
        "tier": tier,
        "rank_at": rank_at,
        "sort_probability": sort_probability,
        "band": band,
        "model_band": model_band if score is not None else None,
        "probability": probability,
        "probability_low": low,
        "probability_high": high,
        "model_version": version,
        "score_id": score_id,
        "reasons": reasons,
    }


@dataclass(frozen=True)
class Scored:
    """A stored score with the explanation and safety outcome behind it."""

    score: ScoreRow
    explained: ExplainedScore
    safety: SafetyOutcome


class AlreadyScored(Exception):
    """The referral's queue entry holds a score by this model already (another worker's)."""


def score_referral(
    session: Session,
    scorer: Scorer,
    *,
    referral_id: str,
    actor: str,
    trigger: str,
    explained: ExplainedScore | None = None,
    unless_scored_by: str | None = None,
) -> Scored:
    """Score a stored referral, store the score with every reason, audit it, requeue it.

    The writes are Core statements (no ORM unit of work); the returned ``ScoreRow`` is not
    attached to the session. ``unless_scored_by``: raise ``AlreadyScored`` if the queue
    entry holds a score by that model version already.
    """
    if (
        unless_scored_by is not None
        and queue_model_version(session, referral_id=referral_id) == unless_scored_by
    ):
        raise AlreadyScored(referral_id)
    stored = read_referral_facts(session, referral_id=referral_id)
    if stored is None:
        raise LookupError(referral_id)
    if explained is None:
        explained = explain_referral(session, scorer, referral_id=referral_id)
    facts = referral_facts(stored, stored.date_of_birth, explained.values or None)
    scored = record_score(
        session, referral_id=referral_id, facts=facts, explained=explained, actor=actor,
        trigger=trigger,
    )  # fmt: skip
    if stored.status == "open":
        entry = queue_entry(
            referral_id=referral_id,
            child_id=stored.child_id,
            received_at=stored.received_at,
            concerns=stored.concerns,
            facts=facts,
            score=scored.score,
            model_band=scored.safety.model_band,
        )
        upsert_queue_entry(session, entry=entry)
    return scored


def record_score(
    session: Session,
    *,
    referral_id: str,
    facts: ReferralFacts,
    explained: ExplainedScore,
    actor: str,
    trigger: str,
) -> Scored:
    """Apply the safety rules to an explained score, store it with every reason, audit it.

    The caller keeps the referral's queue entry in step with it.
    """
    planned = plan_score(referral_id=referral_id, facts=facts, explained=explained)
    return store_score(session, planned, actor=actor, trigger=trigger)


@dataclass(frozen=True)
class PlannedScore:
    """A score ready to store: its column values, explanation and safety outcome."""

    values: dict[str, Any]
    explained: ExplainedScore
    safety: SafetyOutcome

    def unstored(self) -> Scored:
        """The score as it will be stored, without the id the store gives it."""
        return Scored(ScoreRow(id=None, **self.values), self.explained, self.safety)


def plan_score(
    *, referral_id: str, facts: ReferralFacts, explained: ExplainedScore
) -> PlannedScore:
    """The score of an explanation once the safety rules apply (no store needed)."""
    safety = apply_safety_rules(facts, explained.band)
    assert safety.band is not None
    values = {
        "referral_id": referral_id,
        "scored_at": utcnow(),
        "model_version": explained.model_version,
        "probability": explained.probability,
        "probability_low": explained.probability_low,
        "probability_high": explained.probability_high,
        "band": safety.band,
        "flags": list(safety.flag_codes),
        "reasons": [reason.as_dict() for reason in explained.reasons],
    }
    return PlannedScore(values, explained, safety)


def store_score(
    session: Session,
    planned: PlannedScore,
    *,
    actor: str,
    trigger: str,
    audit_after: str | None = None,
) -> Scored:
    """Store a planned score and its audit event; the returned score has its id.

    ``audit_after``: the hash of this transaction's last audit event, if it wrote one.
    """
    values, explained, safety = planned.values, planned.explained, planned.safety
    score = ScoreRow(id=insert_score(session, score=values), **values)
    insert_audit_event(
        session,
        actor=actor,
        action="referral.scored",
        entity_type="referral",
        entity_id=values["referral_id"],
        model_version=explained.model_version,
        payload={
            "score_id": score.id,
            "trigger": trigger,
            "probability": explained.probability,
            "band": safety.band,
            "model_band": safety.model_band,
            "flags": safety.flag_codes,
            "history_truncated": explained.history_truncated,
        },
        after=audit_after,
    )
    return Scored(score=score, explained=explained, safety=safety)


def try_score(
    sessions: sessionmaker[Session],
    model: LoadedModel,
    *,
    referral_id: str,
    actor: str,
    trigger: str,
    read_sessions: sessionmaker[Session] | None = None,
    unless_scored_by: str | None = None,
) -> Scored | None:
    """Score in a transaction of its own; on any failure log it (no personal data), return None.

    With ``read_sessions`` the features and reasons are computed on a read-only session first,
    so the write transaction (and, on SQLite, the write lock) lasts only for storing them.
    ``unless_scored_by`` raises ``AlreadyScored`` as ``score_referral`` does.
    """
    explained = None
    if read_sessions is not None:
        try:
            with read_sessions() as reader:
                explained = explain_referral(reader, model.scorer, referral_id=referral_id)
        except Exception as exc:
            log.error("scoring referral %s failed: %s", referral_id, type(exc).__name__)
            return None
    with sessions() as session:
        try:
            scored = score_referral(
                session,
                model.scorer,
                referral_id=referral_id,
                actor=actor,
                trigger=trigger,
                explained=explained,
                unless_scored_by=unless_scored_by,
            )
            session.commit()
            return scored
        except AlreadyScored:
            session.rollback()
            raise
        except Exception as exc:
            session.rollback()
            # The type only: a message could quote the referral's content.
            log.error("scoring referral %s failed: %s", referral_id, type(exc).__name__)
            return None


def sync_queue(session: Session, *, batch: int = 1000) -> int:
    """Queue every open referral that has no entry (e.g. loaded from an extract); return count.

    Batched Core inserts: at start-up with several workers the others wait for this
    transaction, so it must stay short even for a large extract.
    """
    added = 0
    while True:
        referrals = open_referrals_missing_from_queue(session, limit=batch)
        if not referrals:
            return added
        child_ids = {r.child_id for r in referrals}
        births = {
            child_id: born
            for child_id, born in session.execute(
                select(ChildRow.child_id, ChildRow.date_of_birth).where(
                    ChildRow.child_id.in_(child_ids)
                )
            )
        }
        scores = latest_scores(session, referral_ids=[r.referral_id for r in referrals])
        entries = [
            queue_entry(
                referral_id=r.referral_id,
                child_id=r.child_id,
                received_at=r.received_at,
                concerns=r.concerns,
                facts=referral_facts(r, births[r.child_id]),
                score=scores.get(r.referral_id),
            )
            for r in referrals
        ]
        insert_queue_entries_if_new(session, entries=entries)
        added += len(referrals)


@dataclass(frozen=True)
class BacklogResult:
    """How a backlog run went."""

    scored: int
    failed: int
    remaining: int


def score_backlog(
    sessions: sessionmaker[Session],
    model: LoadedModel,
    *,
    actor: str,
    limit: int | None = None,
    stop: threading.Event | None = None,
    batch: int = 200,
    failed_before: set[str] | None = None,
) -> BacklogResult:
    """Score queued referrals that are unscored or scored by another model version.

    ``failed_before``: referrals that failed with this model in an earlier run, skipped; this
    run's failures are added to it.
    """
    version = model.scorer.version
    failed = failed_before if failed_before is not None else set()
    known = len(failed)
    scored = 0
    current: set[str] = set()  # scored with this model by another worker meanwhile

    def tried() -> int:
        return scored + len(failed) - known + len(current)

    while limit is None or tried() < limit:
        if stop is not None and stop.is_set():
            break
        with sessions() as session:
            ids = [
                i
                for i in queue_entries_to_score(
                    session, model_version=version, limit=batch + len(failed) + len(current)
                )
                if i not in failed and i not in current
            ]
        if not ids:
            break
        for referral_id in ids[: batch if limit is None else limit - tried()]:
            if stop is not None and stop.is_set():
                break
            try:
                done = try_score(
                    sessions,
                    model,
                    referral_id=referral_id,
                    actor=actor,
                    trigger="model_loaded",
                    unless_scored_by=version,
                )
            except AlreadyScored:  # another worker (a reload, a sweep) scored it meanwhile
                current.add(referral_id)
                continue
            if done is None:
                failed.add(referral_id)
            else:
                scored += 1
    with sessions() as session:
        remaining = len(queue_entries_to_score(session, model_version=version, limit=100_000))
    return BacklogResult(scored=scored, failed=len(failed) - known, remaining=remaining)


def flag_unscored_from_history(
    sessions: sessionmaker[Session], *, stop: threading.Event | None = None, batch: int = 200
) -> int:
    """With no model to score them, read the history of unscored open referrals for the
    safety rules and requeue those whose flags change; return how many changed.

    Intake reads the history itself; this covers referrals queued from a loaded extract.
    """
    with sessions() as session:
        ids = list(
            session.scalars(
                select(QueueEntryRow.referral_id)
                .where(QueueEntryRow.score_id.is_(None))
                .order_by(QueueEntryRow.received_at)
            )
        )
    changed = 0
    for start in range(0, len(ids), batch):
        if stop is not None and stop.is_set():
            break
        with sessions() as session:
            for referral_id in ids[start : start + batch]:
                changed += _reflag(session, referral_id)
            session.commit()
    return changed


def _reflag(session: Session, referral_id: str) -> int:
    """Requeue one unscored referral with flags read from its history; 1 if they changed."""
    stored = read_referral_facts(session, referral_id=referral_id)
    entry = session.get(QueueEntryRow, referral_id)
    if stored is None or entry is None or entry.score_id is not None:
        return 0
    history = online_features(session, referral_id=referral_id).vector()
    facts = referral_facts(stored, stored.date_of_birth, history)
    fresh = queue_entry(
        referral_id=referral_id,
        child_id=stored.child_id,
        received_at=stored.received_at,
        concerns=stored.concerns,
        facts=facts,
        score=None,
    )
    if list(fresh["flags"]) == list(entry.flags):
        return 0
    upsert_queue_entry(session, entry=fresh)
    return 1


def rescore_each(
    state: ServiceContext,
    model: LoadedModel | None,
    referral_ids: Iterable[str],
    *,
    actor: str,
    trigger: str,
) -> tuple[list[str], list[str]]:
    """Score each referral again with ``model`` (none scored without one): which were, which
    were not."""
    rescored: list[str] = []
    not_rescored: list[str] = []
    for referral_id in referral_ids:
        done = None
        if model is not None:
            done = try_score(
                state.sessions,
                model,
                referral_id=referral_id,
                actor=actor,
                trigger=trigger,
                read_sessions=state.read_sessions,
            )
        (rescored if done is not None else not_rescored).append(referral_id)
    return rescored, not_rescored
