"""Behaviour tests for the intake contract in triage.schema."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from triage.schema import (
    MAX_ATTRIBUTES,
    MAX_CLOCK_SKEW,
    MAX_NARRATIVE_CHARS,
    REFERRAL_EXAMPLE,
    AgencyEventIn,
    BandAgreement,
    Child,
    DecisionIn,
    Injury,
    OutcomeIn,
    ReferralIn,
    Referrer,
    error_fields,
)
from triage.vocab import EVENT_AGENCY, Agency, Concern, EventKind, OutcomeLevel, PlanCategory

ALL_MODELS: list[type[BaseModel]] = [
    Child,
    Referrer,
    Injury,
    ReferralIn,
    AgencyEventIn,
    DecisionIn,
    OutcomeIn,
]


def referral(**overrides: Any) -> dict[str, Any]:
    """A deep copy of the binding example with top-level overrides applied."""
    data = copy.deepcopy(REFERRAL_EXAMPLE)
    data.update(overrides)
    return data


def event(**overrides: Any) -> dict[str, Any]:
    """A valid agency event payload with overrides applied."""
    data: dict[str, Any] = {
        "source_system": "police-feed",
        "source_event_id": "E-1",
        "agency": "police",
        "kind": "domestic_abuse_incident",
        "occurred_at": "2026-03-01T22:15:00Z",
        "child_id": "C-1042",
        "household_id": "H-311",
        "attributes": {"grade": "medium", "repeat": True, "count": 2},
    }
    data.update(overrides)
    return data


def decision(**overrides: Any) -> dict[str, Any]:
    """A valid decision payload with overrides applied."""
    data: dict[str, Any] = {
        "decision": "assessment",
        "agreement": "agree",
        "reason_codes": ["injury_reported"],
        "rationale": "",
    }
    data.update(overrides)
    return data


def outcome(**overrides: Any) -> dict[str, Any]:
    """A valid outcome payload with overrides applied."""
    data: dict[str, Any] = {
        "referral_id": "R-1",
        "highest_level": "cp_plan",
        "investigated_12m": True,
        "significant_harm_12m": True,
        "cp_category": "physical_abuse",
    }
    data.update(overrides)
    return data


def iso(moment: datetime) -> str:
    """ISO 8601 text for a datetime."""
    return moment.isoformat()


def error_locs(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[int | str, ...]]:
    """Validate data expecting failure; return the error locs."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [tuple(err["loc"]) for err in info.value.errors()]


def only_loc(model: type[BaseModel], data: dict[str, Any]) -> tuple[int | str, ...]:
    """Validate data expecting exactly one error; return its loc."""
    locs = error_locs(model, data)
    assert len(locs) == 1, locs
    return locs[0]


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


# --- narrative -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "ok"), [(0, True), (MAX_NARRATIVE_CHARS, True), (MAX_NARRATIVE_CHARS + 1, False)]
)
def test_narrative_length(length: int, ok: bool) -> None:
    data = referral(narrative="x" * length)
    if ok:
        assert len(ReferralIn.model_validate(data).narrative) == length
    else:
        assert only_loc(ReferralIn, data) == ("narrative",)


def test_narrative_limit_is_twenty_thousand() -> None:
    assert MAX_NARRATIVE_CHARS == 20_000


# Excludes U+001C..U+001F: Python's str.strip removes them but pydantic-core's strip does not.
_narrative_chars = st.characters(exclude_characters="\x1c\x1d\x1e\x1f", exclude_categories=["Cs"])


def _refused(char: str) -> bool:
    """A character no narrative may hold: C0 but tab and line breaks, DEL, C1, bidi controls."""
    code = ord(char)
    if char in "\t\n\r":
        return False
    bidi = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
    return code < 0x20 or 0x7F <= code <= 0x9F or code in bidi or code in (0x2028, 0x2029)


@st.composite
def narratives(draw: st.DrawFn) -> str:
    """Narratives of any length up to twice the limit, clustered around the limit."""
    # Hypothesis can't draw 20,000 independent characters, so a repeated fill carries the length
    # and random ends (which may include whitespace) vary the content that stripping sees.
    head = draw(st.text(_narrative_chars, max_size=20))
    tail = draw(st.text(_narrative_chars, max_size=20))
    fill = draw(_narrative_chars)
    repeats = draw(
        st.integers(0, 2 * MAX_NARRATIVE_CHARS)
        | st.integers(MAX_NARRATIVE_CHARS - 45, MAX_NARRATIVE_CHARS + 5)
    )
    return head + fill * repeats + tail


@settings(max_examples=150, deadline=None)
@given(narratives())
def test_narrative_length_property(narrative: str) -> None:
    # Length is judged after whitespace stripping, as every string field is stripped; control
    # and bidi formatting characters are refused whatever the length (tests/test_input_limits).
    fits = len(narrative.strip()) <= MAX_NARRATIVE_CHARS and not any(
        _refused(char) for char in narrative.strip()
    )
    data = referral(narrative=narrative)
    if fits:
        assert ReferralIn.model_validate(data).narrative == narrative.strip()
    else:
        assert only_loc(ReferralIn, data) == ("narrative",)


# --- enums and lists -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "loc"),
    [
        (None, "concerns", ["physical_abuse", "witchcraft"], ("concerns", 1)),
        ("child", "sex", "M", ("child", "sex")),
        ("child", "ethnicity", "irish", ("child", "ethnicity")),
        ("referrer", "type", "teacher", ("referrer", "type")),
        ("referrer", "relationship", "uncle", ("referrer", "relationship")),
        ("injury", "sites", ["elbow"], ("injury", "sites", 0)),
    ],
)
def test_unknown_enum_value_rejected(
    section: str | None, key: str, value: Any, loc: tuple[str | int, ...]
) -> None:
    data = referral()
    (data[section] if section else data)[key] = value
    with pytest.raises(ValidationError) as info:
        ReferralIn.model_validate(data)
    (err,) = info.value.errors()
    assert err["loc"] == loc
    assert err["type"] == "enum"


@pytest.mark.parametrize(
    "concerns",
    [[], ["neglect", "neglect"], ["neglect", "missing", "neglect"]],
    ids=["empty", "duplicate", "duplicate-apart"],
)
def test_bad_concerns_rejected(concerns: list[str]) -> None:
    assert only_loc(ReferralIn, referral(concerns=concerns)) == ("concerns",)


def test_all_concerns_accepted() -> None:
    everything = [c.value for c in Concern]
    assert len(everything) == 11
    assert ReferralIn.model_validate(referral(concerns=everything)).concerns == everything


def test_sites_without_reported_injury_rejected() -> None:
    data = referral(injury={"reported": False, "sites": ["limbs"]})
    assert only_loc(ReferralIn, data) == ("injury", "sites")


def test_duplicate_sites_rejected() -> None:
    data = referral(injury={"reported": True, "sites": ["limbs", "limbs"]})
    assert only_loc(ReferralIn, data) == ("injury", "sites")


def test_reported_injury_without_sites_accepted() -> None:
    assert ReferralIn.model_validate(referral(injury={"reported": True})).injury.sites == []


# --- agency events ---------------------------------------------------------------------------


def test_event_validates() -> None:
    e = AgencyEventIn.model_validate(event())
    assert e.agency is Agency.police
    assert e.attributes == {"grade": "medium", "repeat": True, "count": 2}
    assert type(e.attributes["repeat"]) is bool
    assert type(e.attributes["count"]) is int


@pytest.mark.parametrize("kind", list(EventKind))
def test_event_kind_matches_its_agency(kind: EventKind) -> None:
    expected = EVENT_AGENCY[kind]
    assert AgencyEventIn.model_validate(event(agency=expected, kind=kind)).kind is kind
    wrong = next(a for a in Agency if a is not expected)
    with pytest.raises(ValidationError) as info:
        AgencyEventIn.model_validate(event(agency=wrong, kind=kind))
    (err,) = info.value.errors()
    assert err["loc"] == ("kind",)
    assert f"'{expected}'" in err["msg"]


@pytest.mark.parametrize(
    ("child_id", "household_id", "ok"),
    [("C-1", None, True), (None, "H-1", True), (None, None, False)],
)
def test_event_needs_child_or_household(
    child_id: str | None, household_id: str | None, ok: bool
) -> None:
    data = event(child_id=child_id, household_id=household_id)
    if ok:
        AgencyEventIn.model_validate(data)
    else:
        assert only_loc(AgencyEventIn, data) == ("household_id",)


def test_event_with_subject_fields_omitted_rejected() -> None:
    data = event()
    del data["child_id"], data["household_id"]
    assert only_loc(AgencyEventIn, data) == ("household_id",)


def test_event_bad_child_id_reported_once() -> None:
    assert only_loc(AgencyEventIn, event(child_id="bad id", household_id=None)) == ("child_id",)


def test_event_attribute_limits() -> None:
    at_limit = {f"k{i}": i for i in range(MAX_ATTRIBUTES)}
    assert len(AgencyEventIn.model_validate(event(attributes=at_limit)).attributes) == 32
    over = at_limit | {"one_more": 1}
    assert only_loc(AgencyEventIn, event(attributes=over)) == ("attributes",)


def test_event_attribute_key_too_long_rejected() -> None:
    loc = only_loc(AgencyEventIn, event(attributes={"k" * 65: 1}))
    assert loc[0] == "attributes"


@pytest.mark.parametrize(("length", "ok"), [(500, True), (501, False)])
def test_event_attribute_value_length(length: int, ok: bool) -> None:
    data = event(attributes={"note": "v" * length})
    if ok:
        assert AgencyEventIn.model_validate(data).attributes["note"] == "v" * length
    else:
        assert only_loc(AgencyEventIn, data) == ("attributes",)


def test_event_attribute_nested_value_rejected() -> None:
    locs = error_locs(AgencyEventIn, event(attributes={"nested": {"a": 1}}))
    assert all(loc[:2] == ("attributes", "nested") for loc in locs)


# --- decisions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agreement", [BandAgreement.should_be_higher, BandAgreement.should_be_lower]
)
@pytest.mark.parametrize("rationale", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_rationale_required_when_disagreeing(agreement: str, rationale: str | None) -> None:
    data = decision(agreement=agreement, rationale=rationale)
    if rationale is None:
        del data["rationale"]
    assert only_loc(DecisionIn, data) == ("rationale",)


def test_rationale_optional_when_agreeing() -> None:
    data = decision()
    del data["rationale"]
    assert DecisionIn.model_validate(data).rationale == ""


def test_disagreement_with_rationale_accepted() -> None:
    d = DecisionIn.model_validate(
        decision(agreement="should_be_higher", rationale="  Second referral this month. ")
    )
    assert d.agreement is BandAgreement.should_be_higher
    assert d.rationale == "Second referral this month."


@pytest.mark.parametrize(
    ("codes", "loc"),
    [
        (["Injury"], ("reason_codes", 0)),
        (["ok", "has space"], ("reason_codes", 1)),
        ([""], ("reason_codes", 0)),
        (["x" * 65], ("reason_codes", 0)),
        ([f"c{i}" for i in range(11)], ("reason_codes",)),
    ],
    ids=["upper", "space", "empty", "long", "too-many"],
)
def test_bad_reason_codes_rejected(codes: list[str], loc: tuple[str | int, ...]) -> None:
    assert only_loc(DecisionIn, decision(reason_codes=codes)) == loc


def test_rationale_too_long_rejected() -> None:
    assert only_loc(DecisionIn, decision(rationale="r" * 5_001)) == ("rationale",)


def test_bad_agreement_rejected() -> None:
    assert only_loc(DecisionIn, decision(agreement="maybe")) == ("agreement",)


# --- outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [lvl for lvl in OutcomeLevel if lvl is not OutcomeLevel.cp_plan])
def test_cp_category_only_with_cp_plan(level: OutcomeLevel) -> None:
    assert only_loc(OutcomeIn, outcome(highest_level=level)) == ("cp_category",)
    assert OutcomeIn.model_validate(outcome(highest_level=level, cp_category=None)).cp_category is (
        None
    )


@pytest.mark.parametrize("category", list(PlanCategory))
def test_cp_plan_accepts_any_category(category: PlanCategory) -> None:
    assert OutcomeIn.model_validate(outcome(cp_category=category)).cp_category is category


def test_cp_plan_without_category_accepted() -> None:
    assert OutcomeIn.model_validate(outcome(cp_category=None)).cp_category is None


# --- error_fields ----------------------------------------------------------------------------


def test_error_fields_shape() -> None:
    data = referral(concerns=["neglect", "nope"], priority="high")
    data["child"]["date_of_birth"] = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    with pytest.raises(ValidationError) as info:
        ReferralIn.model_validate(data)
    fields = error_fields(info.value)
    assert all(set(item) == {"field", "reason"} for item in fields)
    assert all(isinstance(item["reason"], str) and item["reason"] for item in fields)
    by_field = {item["field"]: item["reason"] for item in fields}
    assert set(by_field) == {"child.date_of_birth", "concerns.1", "priority"}
    assert by_field["child.date_of_birth"] == "date of birth cannot be in the future"


def test_error_fields_messages_have_no_prefix() -> None:
    with pytest.raises(ValidationError) as info:
        DecisionIn.model_validate(decision(agreement="should_be_lower"))
    reason = "a rationale is required when agreement is 'should_be_lower'"
    assert error_fields(info.value) == [{"field": "rationale", "reason": reason}]


def test_error_fields_is_json_serialisable() -> None:
    with pytest.raises(ValidationError) as info:
        AgencyEventIn.model_validate(event(kind="eviction"))
    fields = error_fields(info.value)
    assert json.loads(json.dumps(fields)) == fields
    assert fields[0]["field"] == "kind"
    assert "housing" in fields[0]["reason"]
