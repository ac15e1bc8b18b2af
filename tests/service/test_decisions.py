"""Deciding without anchoring: derived agreement, the rationale rule, judge first, the panels."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import casework, decisions, team_panels
from service.deidentify import deidentify
from service.errors import Conflict, Invalid
from triage.queue import BANDS
from triage.schema import BandAgreement, DecisionIn, derive_agreement
from triage.store import (
    AuditEventRow,
    DecisionRow,
    add_child,
    add_household,
    add_referral,
    get_child,
    get_referral,
)
from triage.store.team_facts import DecisionRecord, OpenItem
from triage.vocab import PRIORITY_BANDS, Priority

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)  # a Monday


def test_the_four_priorities_are_the_queue_bands_in_order() -> None:
    assert tuple(PRIORITY_BANDS.values()) == BANDS


@pytest.mark.parametrize(
    ("priority", "band", "expected"),
    [
        (Priority.review_first, "Elevated", BandAgreement.should_be_higher),
        (Priority.elevated, "Elevated", BandAgreement.agree),
        (Priority.lower_band, "Standard", BandAgreement.should_be_lower),
        (Priority.standard, "Review first", BandAgreement.should_be_lower),
        (Priority.lower_band, "Lower", BandAgreement.agree),
        (Priority.standard, None, None),
        (Priority.standard, "Unknown band", None),
    ],
)
def test_agreement_is_derived_from_the_practitioners_priority(
    priority: Priority, band: str | None, expected: BandAgreement | None
) -> None:
    assert derive_agreement(priority, band) == expected


def test_a_decision_needs_a_priority_or_an_older_clients_agreement() -> None:
    with pytest.raises(ValueError, match="priority is required") as caught:
        DecisionIn.model_validate({"decision": "assessment"})
    assert caught.value.errors()[0]["loc"] == ("priority",)  # type: ignore[attr-defined]
    assert (
        DecisionIn.model_validate({"decision": "assessment", "agreement": "agree"}).priority is None
    )
    # Disagreeing no longer needs a rationale in itself: the rule is the referral's.
    parsed = DecisionIn.model_validate({"decision": "assessment", "agreement": "should_be_higher"})
    assert parsed.rationale == ""


_serial = itertools.count()


def _store(session: Session, *, received_at: datetime, injury: bool, child_id: str) -> str:
    """Store a referral about ``child_id`` (and the child and household when new)."""
    if get_child(session, child_id=child_id) is None:
        household_id = f"H-{child_id}"
        add_household(
            session,
            household={"household_id": household_id, "deprivation_decile": 3, "synthetic": True},
        )
        add_child(
            session,
            child={
                "child_id": child_id,
                "household_id": household_id,
                "given_name": "Ada",
                "family_name": "Ash",
                "date_of_birth": date(2015, 3, 1),
                "sex": "female",
                "ethnicity": "white",
                "disability": False,
                "deprivation_decile": 3,
                "synthetic": True,
            },
        )
    referral_id = f"R-{next(_serial)}"
    add_referral(
        session,
        referral={
            "referral_id": referral_id,
            "source_system": "mash",
            "source_referral_id": f"src-{referral_id}",
            "child_id": child_id,
            "household_id": f"H-{child_id}",
            "received_at": received_at,
            "referrer_type": "school",
            "concerns": ["physical_abuse"],
            "injury_reported": injury,
            "injury_sites": ["limbs"] if injury else [],
            "injury_photographed": False,
            "narrative": "[synthetic] A bruise.",
            "synthetic": True,
        },
    )
    session.commit()
    return referral_id


def test_a_closing_decision_needs_a_rationale_for_an_injury_or_a_recent_earlier_referral(
    session: Session,
) -> None:
    quiet = _store(session, received_at=T0, injury=False, child_id="C-1")
    hurt = _store(session, received_at=T0, injury=True, child_id="C-2")
    _store(session, received_at=T0 - timedelta(days=400), injury=False, child_id="C-3")
    long_after = _store(session, received_at=T0, injury=False, child_id="C-3")
    _store(session, received_at=T0 - timedelta(days=300), injury=False, child_id="C-4")
    repeat = _store(session, received_at=T0, injury=False, child_id="C-4")

    def reasons(referral_id: str, kind: str = "no_further_action") -> list[str]:
        row = get_referral(session, referral_id=referral_id)
        assert row is not None
        return decisions.rationale_reasons(session, referral=row, decision=kind)  # type: ignore[arg-type]

    assert reasons(quiet) == [] and reasons(long_after) == []  # 400 days is not within 12 months
    assert reasons(hurt) == ["the referral reports an injury"]
    assert reasons(hurt, "information_advice") == ["the referral reports an injury"]
    assert reasons(hurt, "assessment") == []  # only a closing decision
    assert len(reasons(repeat)) == 1 and "earlier referral" in reasons(repeat)[0]
    assert "Jan 2026" in reasons(repeat)[0]  # 300 days before 2 Nov 2026


def test_the_rationale_rule_is_the_same_whether_the_practitioner_agrees_or_not(
    session: Session,
) -> None:
    hurt = _store(session, received_at=T0, injury=True, child_id="C-5")
    for priority in Priority:  # with no score, no priority "agrees"; with a score, one does
        decision = DecisionIn(decision="no_further_action", priority=priority)  # type: ignore[arg-type]
        with pytest.raises(Invalid) as caught:
            casework.decide(session, referral_id=hurt, decision=decision, actor="pat")
        assert caught.value.errors == [
            {
                "field": "rationale",
                "reason": "required for no_further_action: the referral reports an injury",
            }
        ]
        session.rollback()
    explained = DecisionIn(
        decision="no_further_action",  # type: ignore[arg-type]
        priority=Priority.lower_band,
        rationale="Seen by the GP: a fall at nursery, consistent with the account.",
    )
    recorded = casework.decide(session, referral_id=hurt, decision=explained, actor="pat")
    assert recorded["priority"] == "lower" and recorded["agreement"] is None  # unscored
    assert recorded["priority_before_band"] is False


def test_a_contradicting_agreement_is_refused_by_field(session: Session) -> None:
    referral_id = _store(session, received_at=T0, injury=False, child_id="C-6")
    decision = DecisionIn(decision="assessment", priority=Priority.elevated, agreement="agree")  # type: ignore[arg-type]
    with pytest.raises(Invalid) as caught:
        casework.decide(session, referral_id=referral_id, decision=decision, actor="pat")
    assert caught.value.errors is not None
    assert caught.value.errors[0]["field"] == "agreement"
    assert "leave agreement out, it is derived" in caught.value.errors[0]["reason"]


def test_judge_first_hides_the_band_until_the_viewer_gives_a_priority(session: Session) -> None:
    referral_id = _store(session, received_at=T0, injury=False, child_id="C-7")
    row = get_referral(session, referral_id=referral_id)
    assert row is not None
    assert not decisions.band_hidden(session, referral=row, viewer="pat")  # band shown by default
    with pytest.raises(Invalid):
        decisions.set_decision_mode(session, mode="guess", actor="mo")
    decisions.set_decision_mode(session, mode=decisions.JUDGE_FIRST, actor="mo")
    assert decisions.band_hidden(session, referral=row, viewer="pat")
    decisions.judge_priority(
        session, referral_id=referral_id, priority=Priority.elevated, actor="pat"
    )
    assert not decisions.band_hidden(session, referral=row, viewer="pat")
    assert decisions.band_hidden(session, referral=row, viewer="sam")  # per practitioner
    # A second judgement does not replace the first (it was given before the band was seen).
    again = decisions.judge_priority(
        session, referral_id=referral_id, priority=Priority.lower_band, actor="pat"
    )
    assert again["priority"] == "elevated"
    same = DecisionIn(decision="assessment", priority=Priority.elevated)  # type: ignore[arg-type]
    recorded = casework.decide(session, referral_id=referral_id, decision=same, actor="pat")
    assert recorded["priority_before_band"] is True
    actions = session.scalars(select(AuditEventRow.action).order_by(AuditEventRow.id)).all()
    assert "team.decision_mode_changed" in actions
    assert actions.count("referral.priority_judged") == 2
    with pytest.raises(Conflict):
        decisions.judge_priority(
            session, referral_id=referral_id, priority=Priority.lower_band, actor="sam"
        )
    stored = session.scalars(
        select(DecisionRow).where(DecisionRow.referral_id == referral_id)
    ).one()
    assert (stored.priority, stored.priority_before_band) == ("elevated", True)


def _record(**overrides: object) -> DecisionRecord:
    fields: dict[str, object] = {
        "referral_id": "R-1",
        "child_id": "C-1",
        "received_at": T0,
        "decided_at": T0 + timedelta(hours=5),
        "decision": "assessment",
        "agreement": "agree",
        "priority": "standard",
        "priority_before_band": False,
        "reason_codes": (),
        "rationale": None,
        "band": "Standard",
        "outcome_level": None,
        "significant_harm": None,
    }
    return DecisionRecord(**(fields | overrides))  # type: ignore[arg-type]


def test_a_share_of_few_decisions_is_a_count_not_a_percentage() -> None:
    few = team_panels.Share(3, team_panels.SMALL_COUNT - 1)
    assert few.small and few.percent is None
    enough = team_panels.Share(5, team_panels.SMALL_COUNT)
    assert not enough.small and enough.percent == round(100 * 5 / team_panels.SMALL_COUNT)


def test_agreement_is_reported_for_both_ways_of_working() -> None:
    records = [
        _record(priority_before_band=True, agreement="should_be_higher"),
        _record(priority_before_band=True),
        _record(),
        _record(priority=None, agreement="should_be_lower"),
        _record(band=None, agreement=None),  # unscored: nothing to agree with
    ]
    rows = {r.mode: r for r in team_panels.agreement_by_mode(records)}
    assert rows["judge_first"].total == 2
    assert rows["judge_first"].by_agreement == {
        "should_be_higher": 1,
        "agree": 1,
        "should_be_lower": 0,
    }
    assert rows["band_shown"].total == 1 and rows["agreement_only"].total == 1


def test_overrides_are_set_against_later_outcomes() -> None:
    records = [
        _record(agreement="should_be_lower", outcome_level="cp_plan", significant_harm=True),
        _record(agreement="should_be_lower", outcome_level="no_further_action"),
        _record(agreement="should_be_lower"),  # no outcome yet
        _record(agreement="should_be_higher", outcome_level="s47_enquiry"),
    ]
    rows = {r.direction: r for r in team_panels.overrides_against_outcomes(records)}
    lower = rows["should_be_lower"]
    assert (lower.total, lower.with_outcome) == (3, 2)
    assert (lower.investigated.part, lower.investigated.whole) == (1, 2)
    assert lower.significant_harm.part == 1
    assert rows["should_be_higher"].investigated.part == 1
    assert rows["agree"].total == 0


def test_backlog_and_timeliness_count_overdue_and_on_time_by_band() -> None:
    now = T0 + timedelta(days=3)
    items = [
        OpenItem(band="Lower", received_at=T0),  # due Tuesday 10:00: overdue on Thursday
        OpenItem(band="Lower", received_at=now - timedelta(hours=2)),
        OpenItem(band=None, received_at=now - timedelta(hours=1)),
    ]
    rows = {r.band: r for r in team_panels.backlog(items, now=now)}
    assert (rows["Lower"].open, rows["Lower"].overdue) == (2, 1)
    assert rows["Lower"].oldest_hours == pytest.approx(72)
    assert rows["Unscored"].open == 1 and rows["Review first"].open == 0
    late = _record(decided_at=T0 + timedelta(days=2))
    on_time = {r.band: r for r in team_panels.timeliness([late, _record()])}
    assert (on_time["All"].on_time.part, on_time["All"].on_time.whole) == (1, 2)
    assert on_time["Standard"].median_hours == pytest.approx((48 + 5) / 2)


def test_rationales_behind_disagreements_lose_names_ids_dates_and_contacts() -> None:
    text = (
        "Sam Doe's mum said on 3 March 2026 that Dean moved in at SW1A 1AA; call 07700 900123 "
        "or kim@example.org. Child C-1042 was seen by the GP. School says she is settled."
    )
    clean = deidentify(text, names={"Sam", "Doe"})
    for leaked in ("Sam", "Doe", "Dean", "March", "SW1A", "07700", "kim@", "C-1042"):
        assert leaked not in clean
    assert "seen by the GP" in clean and "School says she is settled" in clean
    records = [
        _record(agreement="should_be_lower", rationale="Known to Sam's school.", child_id="C-9"),
        _record(agreement="agree", rationale="Agreed."),
    ]
    shown = team_panels.disagreement_rationales(records, names={"C-9": {"Sam"}})
    assert [r.text for r in shown] == ["Known to [name]'s school."]
    assert deidentify("x" * 2000).endswith("…") and len(deidentify("x" * 2000)) == 600
