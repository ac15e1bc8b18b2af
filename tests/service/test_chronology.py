"""The chronology from a timeline: plain words, outcomes, filters, repeats collapsed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from service.chronology import Entry, Repeats, chronology, entries
from service.plain_names import KIND_NAMES, agency_name, kind_name, referrer_name
from service.reason_words import page_reasons
from triage.vocab import Agency, EventKind, ReferrerRelationship, ReferrerType

CODE = re.compile(r"\b[a-z]+_[a-z_]+\b")


def at(day: str, hour: int = 10) -> datetime:
    """A moment on ``day`` (ISO date), in UTC as the store keeps it."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def event(record_id: str, kind: str, when: datetime, **extra: Any) -> dict[str, Any]:
    """A timeline event as service.views.timeline makes it."""
    agency = {
        "missed_appointment": "health",
        "domestic_abuse_incident": "police",
        "adult_violence_offence": "police",
        "absence_concern": "school",
        "s47_enquiry": "social_care",
    }[kind]
    return {
        "record_id": record_id,
        "kind": "event",
        "at": when,
        "agency": agency,
        "event_kind": kind,
        "person_id": None,
        "about_child": True,
        "attributes": {},
        "signals": [],
    } | extra


def referral(record_id: str, when: datetime, **extra: Any) -> dict[str, Any]:
    """A timeline referral as service.views.timeline makes it."""
    return {
        "record_id": record_id,
        "kind": "referral",
        "at": when,
        "referrer_type": "individual",
        "referrer_relationship": "relative",
        "concerns": ["neglect", "missing"],
        "injury_reported": True,
        "injury_sites": ["head_face_neck"],
        "this_referral": False,
        "signals": [],
    } | extra


def timeline() -> list[dict[str, Any]]:
    """Five missed appointments June-August, a gap, one more; police, a referral decided."""
    items = [event("V1", "adult_violence_offence", at("2019-03-14"), about_child=False)]
    items += [
        event(f"M{i}", "missed_appointment", at("2026-06-02") + timedelta(days=20 * i))
        for i in range(5)
    ]
    items += [
        event("DA1", "domestic_abuse_incident", at("2026-07-01"), signals=["police_da"]),
        referral("R1", at("2026-07-15"), signals=["prior_referrals_child_365d"]),
        {
            "record_id": "R1",
            "kind": "decision",
            "at": at("2026-07-16"),
            "decision": "no_further_action",
            "signals": ["prior_nfa_closures_365d"],
        },
        event("M9", "missed_appointment", at("2026-12-20")),  # 4 months later: a run of its own
        referral("R2", at("2026-12-23"), this_referral=True, referrer_type="police",
                 referrer_relationship=None, injury_reported=False),
    ]  # fmt: skip
    items.sort(key=lambda item: item["at"])
    return items


def test_every_kind_agency_and_referrer_has_a_plain_name() -> None:
    for kind in EventKind:
        assert kind in KIND_NAMES, kind
        assert "_" not in kind_name(kind) and "_" not in kind_name(kind, 5)
    for agency in Agency:
        assert "_" not in agency_name(agency) and agency_name(agency)[0].isupper()
    for referrer in ReferrerType:
        assert "_" not in referrer_name(referrer, None)
    for relationship in ReferrerRelationship:
        assert "_" not in referrer_name("individual", relationship)
    assert referrer_name("individual", "relative") == "a relative"


def test_records_read_in_words_with_their_outcome_and_referrer() -> None:
    rows = {e.record_id: e for e in entries(timeline())}
    r1 = rows["R1"]
    assert r1.summary.startswith("From a relative, about neglect, the child going missing")
    assert "injury reported (head, face or neck)" in r1.summary
    assert r1.outcome == "No further action (front-door decision, 16 Jul 2026)"
    # The decision is the referral's outcome: its anchor and its signals are on the same row.
    assert r1.anchors == ("record-decision-R1",)
    assert set(r1.signals) == {"prior_referrals_child_365d", "prior_nfa_closures_365d"}
    assert rows["R2"].outcome == "This referral: awaiting a decision"
    assert rows["R2"].summary.startswith("From the police, about") and not rows["R2"].disputable
    assert rows["V1"].subject == "At the household"
    assert rows["DA1"].outcome == "Not recorded by the agency"
    for entry in rows.values():
        text = " ".join((entry.title, entry.summary, entry.outcome, entry.agency_name))
        assert not CODE.search(text), text


def test_an_agencys_own_summary_and_outcome_are_shown() -> None:
    attributes = {"summary": "Bruising seen at nursery", "outcome": "Child protection conference"}
    item = event("S1", "s47_enquiry", at("2026-02-01"), attributes=attributes)
    (entry,) = entries([item])
    assert entry.summary == "Bruising seen at nursery"
    assert entry.outcome == "Child protection conference"


def test_routine_repeats_collapse_into_one_row_with_their_span() -> None:
    shown = chronology(timeline())
    runs = [row for row in shown.rows if isinstance(row, Repeats)]
    assert len(runs) == 1
    (run,) = runs
    assert run.title == "5 missed health appointments"
    assert run.span == "June\u2013August 2026"
    # Newest first, the run where its latest appointment was; the later appointment stands
    # alone, four months after the run.
    order = [row.record_id if isinstance(row, Entry) else "run" for row in shown.rows]
    assert order == ["R2", "M9", "run", "R1", "DA1", "V1"]
    assert shown.shown == shown.total == 10


def test_the_agency_filter_and_the_significant_events_view() -> None:
    police = chronology(timeline(), agencies=["police"])
    assert {row.agency for row in police.rows} == {"police"}
    assert police.chosen_names == ["Police"] and police.shown == 2
    assert "record-event-DA1" in police.anchors and "record-referral-R1" not in police.anchors
    significant = chronology(timeline(), view="significant")
    kinds = {row.kind for row in significant.rows if isinstance(row, Entry)}
    assert "missed_appointment" not in kinds and "domestic_abuse_incident" in kinds
    assert not any(isinstance(row, Repeats) for row in significant.rows)
    both = chronology(timeline(), agencies=["front_door", "health"], view="significant")
    assert [row.record_id for row in both.rows] == ["R2", "R1"]
    counts = {code: n for code, _, n in chronology(timeline()).agencies}
    assert counts == {"front_door": 2, "police": 2, "health": 6}


def test_unknown_filters_are_reported_and_ignored() -> None:
    shown = chronology(timeline(), agencies=["martians", "police"], view="everything")
    assert shown.chosen == ("police",) and shown.view == "all"
    assert any("martians" in e for e in shown.errors) and any(
        "everything" in e for e in shown.errors
    )


def test_history_reasons_are_dated_from_their_records() -> None:
    reasons = [
        {"signal": "household_adult_violence_history", "value": 1.0, "contribution": 0.9,
         "record_ids": ["V1"], "records_omitted": 0},
        {"signal": "missed_health_appointments_365d", "value": 5.0, "contribution": 0.3,
         "record_ids": ["M0", "M1", "M2", "M3", "M4"], "records_omitted": 2},
        {"signal": "prior_nfa_closures_365d", "value": 1.0, "contribution": -0.06,
         "record_ids": ["R1"], "records_omitted": 0},
        {"signal": "injury_reported", "value": 0.0, "contribution": -0.01, "record_ids": []},
    ]  # fmt: skip
    violence, missed, closed, injury = page_reasons(reasons, timeline(), None)
    assert violence["sentence"] == (
        "An adult in the household has a recorded violence offence, March 2019"
    )
    assert violence["effect"] == "raises priority strongly" and violence["rank"] == 1
    assert missed["sentence"].endswith("June\u2013August 2026 (and 2 older records)")
    # A decision's record is dated when it was decided, not when the referral arrived.
    assert closed["sentence"].endswith(", July 2026") and closed["direction"] == "lowers"
    assert injury["sentence"] == "No injury is reported" and injury["effect"] == (
        "barely moves priority"
    )
    for reason in (violence, missed, closed, injury):
        assert not re.search(r"\d\.\d", reason["sentence"] + reason["effect"])


def test_the_front_doors_own_work_joins_the_chronology() -> None:
    # service.checks.check_timeline_items: a request and its reply share the request's id.
    asked = {
        "kind": "check",
        "at": at("2026-12-21"),
        "record_id": "Q1",
        "referral_id": "R2",
        "words": "Information requested from GP practice",
        "agency": "gp",
        "signals": [],
    }
    replied = asked | {"at": at("2026-12-22"), "words": "GP practice replied: no concerns"}
    met = {"kind": "strategy", "at": at("2026-12-22", 15), "record_id": "S1",
           "referral_id": "R2", "words": "Strategy discussion (Police): section 47",
           "agency": None, "signals": []}  # fmt: skip
    shown = chronology([*timeline(), asked, replied, met])
    team = [e for e in shown.every if e.kind in ("check", "strategy")]
    assert [e.title for e in team] == [
        "Request for information", "Request for information", "Strategy discussion"
    ]  # fmt: skip
    assert len({e.anchor for e in team}) == 3 and not any(e.disputable for e in team)
    assert team[0].agency == "health" and team[2].agency == "front_door"  # a GP is health
    health = chronology([*timeline(), asked, replied, met], agencies=["health"])
    assert "GP practice replied: no concerns" in [getattr(r, "summary", "") for r in health.rows]


def test_a_row_limit_keeps_the_newest_rows_and_says_what_it_held_back() -> None:
    full = chronology(timeline())
    limited = chronology(timeline(), limit=3, run_listed=2)
    assert limited.rows == full.rows[:3]  # R2, M9, then the run of five
    assert limited.more_rows == len(full.rows) - 3 == 3
    run = limited.rows[2]
    assert isinstance(run, Repeats) and run.title == "5 missed health appointments"
    # The run keeps its count and span; only its newest two records are listed (and linkable).
    assert [e.record_id for e in run.listed(limited.run_listed)] == ["M3", "M4"]
    assert "record-event-M4" in limited.anchors and "record-event-M2" not in limited.anchors
    assert "record-referral-R1" not in limited.anchors and "record-event-V1" in full.anchors
    assert (limited.shown, limited.matching, limited.total) == (4, 10, 10)


def test_without_a_limit_every_row_and_every_record_of_a_run_is_listed() -> None:
    full = chronology(timeline())
    assert full.more_rows == 0 and full.run_listed is None
    (run,) = [row for row in full.rows if isinstance(row, Repeats)]
    assert run.listed(full.run_listed) == run.entries
    assert full.shown == full.matching == full.total


def test_the_row_limit_applies_after_the_filter() -> None:
    limited = chronology(timeline(), view="significant", limit=2)
    assert [row.record_id for row in limited.rows if isinstance(row, Entry)] == ["R2", "R1"]
    assert (limited.shown, limited.matching, limited.more_rows) == (2, 4, 2)
