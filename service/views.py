"""Rows and explanations turned into the JSON the routes return (no HTTP here)."""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from explain.referral import ExplainedScore
from features.catalogue import SIGNALS, Source
from service.champion import LoadedModel
from service.scoring import Scored
from triage.queue import SafetyOutcome, due_by, flags_in_words
from triage.store import (
    ChildRow,
    DecisionRow,
    DisputeRow,
    EventRow,
    HistoryItem,
    HouseholdMembershipRow,
    PersonRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
)

INTAKE_REASONS = 5
QUEUE_REASONS = 3


def unscored(flags: Sequence[str] = ()) -> dict[str, Any]:
    """Score fields of a referral no model has scored (safety flags still apply)."""
    return {"status": "unscored", "flags": flags_in_words(flags), "reasons": []}


def outcome_words_for(version: str | None, model: LoadedModel | None) -> str | None:
    """What a stored score predicts, when the loaded model is the one that made it."""
    if model is not None and version == model.scorer.version:
        return model.scorer.outcome_words
    return None


def model_band_for(score: ScoreRow, model: LoadedModel | None) -> str | None:
    """The model's own band of a stored score (known when a rule fired or the model matches)."""
    if not score.flags:
        return score.band
    if model is not None and score.model_version == model.scorer.version:
        return str(model.scorer.bands.assign([score.probability])[0])
    return None


def score_from_row(
    score: ScoreRow | None,
    *,
    model: LoadedModel | None,
    top: int | None,
    flags_if_unscored: Sequence[str] = (),
    model_band: str | None = None,
) -> dict[str, Any]:
    """Score fields from the latest stored score (or unscored)."""
    if score is None:
        return unscored(flags_if_unscored)
    reasons = list(score.reasons)
    return {
        "status": "scored",
        "band": score.band,
        "model_band": model_band or model_band_for(score, model),
        "probability": score.probability,
        "probability_low": score.probability_low,
        "probability_high": score.probability_high,
        "model_version": score.model_version,
        "outcome_words": outcome_words_for(score.model_version, model),
        "scored_at": score.scored_at,
        "flags": flags_in_words(score.flags),
        "reasons": reasons if top is None else reasons[:top],
    }


def score_from_scored(scored: Scored, *, top: int | None) -> dict[str, Any]:
    """Score fields from a score just made."""
    explained, safety = scored.explained, scored.safety
    reasons = explained.reasons if top is None else explained.top(top)
    return {
        "status": "scored",
        "band": safety.band,
        "model_band": safety.model_band,
        "probability": explained.probability,
        "probability_low": explained.probability_low,
        "probability_high": explained.probability_high,
        "model_version": explained.model_version,
        "outcome_words": explained.outcome_words,
        "scored_at": scored.score.scored_at,
        "flags": flags_in_words(safety.flag_codes),
        "reasons": [reason.as_dict() for reason in reasons],
    }


def summary(explained: ExplainedScore, safety: SafetyOutcome, *, top: int) -> dict[str, Any]:
    """A what-if side: probability, range, band after the rules, rules met, model band, reasons."""
    return {
        "probability": explained.probability,
        "probability_low": explained.probability_low,
        "probability_high": explained.probability_high,
        "band": safety.band,
        "model_band": safety.model_band,
        "flags": flags_in_words(safety.flag_codes),
        "reasons": [reason.as_dict() for reason in explained.top(top)],
    }


class ReceivedReferral(Protocol):
    """What the intake reply shows of a stored referral (a ``ReferralRow`` has it)."""

    # Read-only members, so a frozen dataclass has them as well as a mapped row.
    @property
    def referral_id(self) -> str: ...
    @property
    def source_system(self) -> str: ...
    @property
    def source_referral_id(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...


def accepted(referral: ReceivedReferral, score: dict[str, Any]) -> dict[str, Any]:
    """The intake reply."""
    return {
        "referral_id": referral.referral_id,
        "source_system": referral.source_system,
        "source_referral_id": referral.source_referral_id,
        "received_at": referral.received_at,
        "due_by": due_by(referral.received_at),
        **score,
    }


def queue_item(
    entry: QueueEntryRow,
    *,
    now: datetime,
    model: LoadedModel | None,
    identity_check: bool = False,
) -> dict[str, Any]:
    """One queue entry as shown in the queue (``identity_check``: details to confirm)."""
    due = due_by(entry.received_at)
    if entry.score_id is None:
        score = unscored(entry.flags)
    else:
        score = {
            "status": "scored",
            "band": entry.band,
            "model_band": entry.model_band,
            "probability": entry.probability,
            "probability_low": entry.probability_low,
            "probability_high": entry.probability_high,
            "model_version": entry.model_version,
            "outcome_words": outcome_words_for(entry.model_version, model),
            "scored_at": entry.updated_at,
            "flags": flags_in_words(entry.flags),
            "reasons": list(entry.reasons[:QUEUE_REASONS]),
        }
    return {
        "referral_id": entry.referral_id,
        "child_id": entry.child_id,
        "received_at": entry.received_at,
        "due_by": due,
        "overdue": now > due,
        "waiting_hours": round((now - entry.received_at).total_seconds() / 3600, 2),
        "age_months": entry.age_months,
        "concerns": list(entry.concerns),
        "identity_to_confirm": identity_check,
        **score,
    }


def child_out(child: ChildRow | None) -> dict[str, Any] | None:
    """The child's record."""
    if child is None:
        return None
    return {
        name: getattr(child, name)
        for name in (
            "child_id",
            "household_id",
            "given_name",
            "family_name",
            "date_of_birth",
            "sex",
            "ethnicity",
            "disability",
            "deprivation_decile",
        )
    }


def referral_out(referral: ReferralRow, child: ChildRow | None) -> dict[str, Any]:
    """A stored referral in full."""
    return {
        "referral_id": referral.referral_id,
        "source_system": referral.source_system,
        "source_referral_id": referral.source_referral_id,
        "status": referral.status,
        "received_at": referral.received_at,
        "due_by": due_by(referral.received_at),
        "child": child_out(child),
        "referrer": {
            "type": referral.referrer_type,
            "relationship": referral.referrer_relationship,
            "referrer_id": referral.referrer_id,
        },
        "concerns": list(referral.concerns),
        "injury": {
            "reported": referral.injury_reported,
            "sites": list(referral.injury_sites),
            "photographed": referral.injury_photographed,
        },
        "narrative": referral.narrative,
        "synthetic": referral.synthetic,
        "identity_mismatch": referral.identity_mismatch,
        "child_as_sent": referral.child_as_sent if referral.identity_mismatch else None,
    }


def decision_out(row: DecisionRow) -> dict[str, Any]:
    """A recorded decision."""
    return {
        "decision_id": row.id,
        "referral_id": row.referral_id,
        "decision": row.decision,
        "agreement": row.agreement,
        "reason_codes": list(row.reason_codes),
        "rationale": row.rationale,
        "decided_at": row.decided_at,
        "decided_by": row.decided_by,
        "priority": row.priority,
        "priority_before_band": row.priority_before_band,
    }


def dispute_out(row: DisputeRow, *, outcome_words: str | None = None) -> dict[str, Any]:
    """A stored dispute, with its what-if when one was run."""
    what_if = None
    if row.before is not None and row.after is not None:
        what_if = {
            "model_version": row.model_version,
            "outcome_words": row.before.get("outcome_words") or outcome_words or "",
            "before": row.before,
            "after": row.after,
            "probability_change": row.after["probability"] - row.before["probability"],
            "band_changed": row.after["band"] != row.before["band"],
            "record_behind_score": bool(row.before.get("record_behind_score", True)),
        }
    note = None if what_if is not None else "no model was loaded: the dispute is stored only"
    return {
        "dispute_id": row.id,
        "referral_id": row.referral_id,
        "record_id": row.record_id,
        "reason": row.reason,
        "disputed_by": row.disputed_by,
        "disputed_at": row.disputed_at,
        "what_if": what_if,
        "note": note,
    }


def timeline(
    items: Iterable[HistoryItem],
    decisions: Iterable[DecisionRow],
    *,
    referral_id: str,
    reasons: Sequence[dict[str, Any]],
    team_work: Iterable[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The child's history across agencies, oldest first, each record linked to its signals;
    ``team_work``: the front door's own items (``service.checks.check_timeline_items``)."""
    # A decision's record id is the referral it closed, so the signal's source says which.
    signals_by_record: dict[tuple[str, bool], list[str]] = {}
    for reason in reasons:
        signal = SIGNALS.get(reason["signal"])
        from_decisions = signal is not None and signal.source is Source.decisions
        for record_id in reason.get("record_ids", ()):
            signals_by_record.setdefault((record_id, from_decisions), []).append(reason["signal"])
    out: list[dict[str, Any]] = []
    for item in items:
        row = item.row
        if isinstance(row, ReferralRow):
            out.append(
                {
                    "record_id": row.referral_id,
                    "kind": "referral",
                    "at": row.received_at,
                    "referrer_type": row.referrer_type,
                    "referrer_relationship": row.referrer_relationship,
                    "concerns": list(row.concerns),
                    "injury_reported": row.injury_reported,
                    "injury_sites": list(row.injury_sites),
                    "status": row.status,
                    "this_referral": row.referral_id == referral_id,
                }
            )
        else:
            out.append(
                {
                    "record_id": row.event_id,
                    "kind": "event",
                    "at": row.occurred_at,
                    "agency": row.agency,
                    "event_kind": row.kind,
                    "person_id": row.person_id,
                    "about_child": row.child_id is not None,
                    "attributes": dict(row.attributes or {}),
                }
            )
    for decision in decisions:
        # The feature layer names a decision's record by the referral it closed.
        out.append(
            {
                "record_id": decision.referral_id,
                "kind": "decision",
                "at": decision.decided_at,
                "decision": decision.decision,
            }
        )
    for entry in out:
        key = (entry["record_id"], entry["kind"] == "decision")
        entry["signals"] = signals_by_record.get(key, [])
    out += [dict(item, signals=[]) for item in team_work]  # no signal reads the team's work
    out.sort(key=lambda entry: (entry["at"], entry["kind"], entry["record_id"]))
    return out


def membership_out(row: HouseholdMembershipRow, *, signals: Sequence[str]) -> dict[str, Any]:
    """A person's time in a household, with the signals of the score that used it."""
    return {
        "membership_id": row.membership_id,
        "household_id": row.household_id,
        "role": row.role,
        "joined_at": row.joined_at,
        "left_at": row.left_at,
        "signals": list(signals),
    }


def person_record_out(row: EventRow, *, signals: Sequence[str]) -> dict[str, Any]:
    """An agency's record about an adult."""
    return {
        "record_id": row.event_id,
        "at": row.occurred_at,
        "agency": row.agency,
        "event_kind": row.kind,
        "household_id": row.household_id,
        "signals": list(signals),
    }


def person_out(
    person: PersonRow,
    *,
    memberships: Sequence[HouseholdMembershipRow],
    records: Sequence[EventRow],
    records_total: int,
    signals_of: Mapping[str, Sequence[str]],
    signals: Sequence[str],
    household_id: str,
) -> dict[str, Any]:
    """A person in the panel: who, their memberships, their records (adults), the signals;
    whether they live in ``household_id`` (the referral's) now."""
    return {
        "person_id": person.person_id,
        "is_child": person.is_child,
        "given_name": person.given_name,
        "family_name": person.family_name,
        "date_of_birth": person.date_of_birth,
        "sex": person.sex,
        "lives_here_now": any(
            m.left_at is None and m.household_id == household_id for m in memberships
        ),
        "memberships": [
            membership_out(m, signals=signals_of.get(m.membership_id, ())) for m in memberships
        ],
        "records": [person_record_out(r, signals=signals_of.get(r.event_id, ())) for r in records],
        "records_omitted": max(records_total - len(records), 0),
        "signals": list(signals),
    }


def known_member_out(member: Mapping[str, Any], *, shown: Container[str]) -> dict[str, Any]:
    """A household member as the referral listed them; whether their id is a person ``shown``."""
    person_id = member.get("person_id")
    born = member.get("date_of_birth")
    return {
        "given_name": member.get("given_name"),
        "family_name": member.get("family_name"),
        "role": member.get("role"),
        "date_of_birth": date.fromisoformat(born) if isinstance(born, str) else born,
        "person_id": person_id,
        "matches_member": person_id is not None and person_id in shown,
    }
