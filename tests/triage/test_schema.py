"""Behaviour tests for the intake contract in triage.schema: the binding example, closed
models, identifiers and strings, timestamps and dates (narratives, enums, events,
decisions, outcomes and error_fields: test_schema_records.py)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from schema_support import ALL_MODELS, decision, event, iso, only_loc, outcome, referral

from triage.schema import (
    MAX_CLOCK_SKEW,
    REFERRAL_EXAMPLE,
    AgencyEventIn,
    Child,
    DecisionIn,
    OutcomeIn,
    ReferralIn,
)
from triage.vocab import Concern

# --- the binding example -------------------------------------------------------------------


def test_example_validates_as_written() -> None:
    r = ReferralIn.model_validate(REFERRAL_EXAMPLE)
    assert r.received_at == datetime(2026, 4, 18, 10, 12, tzinfo=UTC)
    assert r.child.date_of_birth == date(2014, 6, 1)
    assert r.child.deprivation_decile == 3
    assert r.referrer.type == "individual"
    assert r.concerns == [Concern.physical_abuse]
    assert r.injury.sites == ["torso_back"]
    assert r.injury.photographed is True


def test_example_validates_from_json() -> None:
    from_json = ReferralIn.model_validate_json(json.dumps(REFERRAL_EXAMPLE))
    assert from_json == ReferralIn.model_validate(REFERRAL_EXAMPLE)


def test_example_round_trips_through_json() -> None:
    r = ReferralIn.model_validate(REFERRAL_EXAMPLE)
    assert ReferralIn.model_validate_json(r.model_dump_json()) == r


def test_example_is_in_json_schema() -> None:
    schema = ReferralIn.model_json_schema()
    assert schema["examples"] == [REFERRAL_EXAMPLE]
    assert schema["additionalProperties"] is False


def test_defaults() -> None:
    data = referral()
    del data["injury"], data["narrative"]
    for key in ("ethnicity", "disability", "deprivation_decile"):
        del data["child"][key]
    r = ReferralIn.model_validate(data)
    assert r.injury.reported is False
    assert r.injury.sites == []
    assert r.narrative == ""
    assert r.child.ethnicity == "not_stated"
    assert r.child.disability is False
    assert r.child.deprivation_decile is None


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_every_model_is_closed_stripped_and_frozen(model: type[BaseModel]) -> None:
    config = model.model_config
    assert config.get("extra") == "forbid"
    assert config.get("str_strip_whitespace") is True
    assert config.get("frozen") is True


def test_models_are_immutable() -> None:
    r = ReferralIn.model_validate(REFERRAL_EXAMPLE)
    with pytest.raises(ValidationError):
        r.narrative = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        r.child.given_name = "Alex"  # type: ignore[misc]


# --- unknown fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), ("priority",)),
        (("child",), ("child", "priority")),
        (("referrer",), ("referrer", "priority")),
        (("injury",), ("injury", "priority")),
    ],
)
def test_unknown_field_rejected(path: tuple[str, ...], expected: tuple[str, ...]) -> None:
    data = referral()
    target = data
    for key in path:
        target = target[key]
    target["priority"] = "high"
    assert only_loc(ReferralIn, data) == expected


@pytest.mark.parametrize(
    ("model", "payload"),
    [(AgencyEventIn, event), (DecisionIn, decision), (OutcomeIn, outcome)],
    ids=["event", "decision", "outcome"],
)
def test_unknown_field_rejected_on_other_models(model: type[BaseModel], payload: Any) -> None:
    assert only_loc(model, payload(score=0.9)) == ("score",)


# --- identifiers and strings -----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id", ["", "-C1", ".C1", "C 1", "C/1", "C#1", "x" * 65, "Ç-1"], ids=repr
)
def test_bad_ids_rejected(bad_id: str) -> None:
    assert only_loc(ReferralIn, referral(source_referral_id=bad_id)) == ("source_referral_id",)
    data = referral()
    data["child"]["child_id"] = bad_id
    assert only_loc(ReferralIn, data) == ("child", "child_id")


@pytest.mark.parametrize("good_id", ["C", "c-1", "a.b:c_d-e", "9" * 64])
def test_good_ids_accepted(good_id: str) -> None:
    assert ReferralIn.model_validate(referral(source_referral_id=good_id)).source_referral_id == (
        good_id
    )


def test_strings_are_stripped() -> None:
    data = referral(source_system="  police-mash-feed ")
    data["child"]["given_name"] = "  Sam\n"
    r = ReferralIn.model_validate(data)
    assert r.source_system == "police-mash-feed"
    assert r.child.given_name == "Sam"


@pytest.mark.parametrize(("name", "ok"), [("   ", False), ("x" * 100, True), ("x" * 101, False)])
def test_name_length(name: str, ok: bool) -> None:
    data = referral()
    data["child"]["family_name"] = name
    if ok:
        assert ReferralIn.model_validate(data).child.family_name == name
    else:
        assert only_loc(ReferralIn, data) == ("child", "family_name")


@pytest.mark.parametrize(("decile", "ok"), [(0, False), (1, True), (10, True), (11, False)])
def test_deprivation_decile_range(decile: int, ok: bool) -> None:
    data = referral()
    data["child"]["deprivation_decile"] = decile
    if ok:
        assert ReferralIn.model_validate(data).child.deprivation_decile == decile
    else:
        assert only_loc(ReferralIn, data) == ("child", "deprivation_decile")


# --- timestamps and dates --------------------------------------------------------------------


def test_naive_received_at_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        ReferralIn.model_validate(referral(received_at="2026-04-18T10:12:00"))
    (err,) = info.value.errors()
    assert err["loc"] == ("received_at",)
    assert err["type"] == "timezone_aware"


def test_naive_occurred_at_rejected() -> None:
    assert only_loc(AgencyEventIn, event(occurred_at="2026-03-01T22:15:00")) == ("occurred_at",)


def test_received_at_normalised_to_utc() -> None:
    r = ReferralIn.model_validate(referral(received_at="2026-04-18T11:12:00+01:00"))
    assert r.received_at == datetime(2026, 4, 18, 10, 12, tzinfo=UTC)
    assert r.received_at.utcoffset() == timedelta(0)
    assert r.received_at.tzinfo is UTC
    assert r.model_dump(mode="json")["received_at"] == "2026-04-18T10:12:00Z"


def test_occurred_at_normalised_to_utc() -> None:
    e = AgencyEventIn.model_validate(event(occurred_at="2026-03-01T17:15:00-05:00"))
    assert e.occurred_at == datetime(2026, 3, 1, 22, 15, tzinfo=UTC)
    assert e.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(("minutes_ahead", "ok"), [(2, True), (10, False)])
def test_received_at_clock_skew(minutes_ahead: int, ok: bool) -> None:
    moment = datetime.now(UTC) + timedelta(minutes=minutes_ahead)
    data = referral(received_at=iso(moment))
    if ok:
        assert ReferralIn.model_validate(data).received_at == moment
    else:
        assert only_loc(ReferralIn, data) == ("received_at",)


@pytest.mark.parametrize(("minutes_ahead", "ok"), [(2, True), (10, False)])
def test_occurred_at_clock_skew(minutes_ahead: int, ok: bool) -> None:
    # A +02:00 offset shows the skew is measured in absolute time, not wall-clock digits.
    moment = datetime.now(UTC) + timedelta(minutes=minutes_ahead)
    data = event(occurred_at=iso(moment.astimezone(timezone(timedelta(hours=2)))))
    if ok:
        assert AgencyEventIn.model_validate(data).occurred_at == moment
    else:
        assert only_loc(AgencyEventIn, data) == ("occurred_at",)


def test_clock_skew_is_five_minutes() -> None:
    assert timedelta(minutes=5) == MAX_CLOCK_SKEW


def test_future_date_of_birth_rejected() -> None:
    data = referral()
    data["child"]["date_of_birth"] = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    assert only_loc(ReferralIn, data) == ("child", "date_of_birth")


def test_date_of_birth_today_accepted() -> None:
    today = datetime.now(UTC).date()
    child = copy.deepcopy(REFERRAL_EXAMPLE["child"]) | {"date_of_birth": today.isoformat()}
    assert Child.model_validate(child).date_of_birth == today


def test_received_before_birth_rejected_on_received_at() -> None:
    data = referral(received_at="2014-05-30T09:00:00Z")
    assert only_loc(ReferralIn, data) == ("received_at",)


def test_received_on_birth_day_accepted() -> None:
    r = ReferralIn.model_validate(referral(received_at="2014-06-01T08:00:00Z"))
    assert r.received_at.date() == r.child.date_of_birth
