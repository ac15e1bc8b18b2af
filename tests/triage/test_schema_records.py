"""Behaviour tests for the intake contract in triage.schema: narratives, enums and lists,
agency events, decisions, outcomes and error_fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schema_support import decision, error_locs, event, only_loc, outcome, referral

from triage.schema import (
    MAX_ATTRIBUTES,
    MAX_NARRATIVE_CHARS,
    AgencyEventIn,
    BandAgreement,
    DecisionIn,
    OutcomeIn,
    ReferralIn,
    error_fields,
)
from triage.vocab import (
    EVENT_AGENCY,
    MEMBERSHIP_EVENT_KINDS,
    PERSON_EVENT_KINDS,
    Agency,
    Concern,
    EventKind,
    OutcomeLevel,
    PlanCategory,
)

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


def _about_whom(kind: EventKind) -> dict[str, Any]:
    """The person and role a kind needs (vocabulary 2), none for a child or household kind."""
    if kind in MEMBERSHIP_EVENT_KINDS:
        return {"person_id": "A-1", "attributes": {"role": "parent_partner"}}
    return {"person_id": "A-1"} if kind in PERSON_EVENT_KINDS else {}


@pytest.mark.parametrize("kind", list(EventKind))
def test_event_kind_matches_its_agency(kind: EventKind) -> None:
    expected = EVENT_AGENCY[kind]
    fitting = event(agency=expected, kind=kind, **_about_whom(kind))
    assert AgencyEventIn.model_validate(fitting).kind is kind
    wrong = next(a for a in Agency if a is not expected)
    with pytest.raises(ValidationError) as info:
        AgencyEventIn.model_validate(event(agency=wrong, kind=kind, **_about_whom(kind)))
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
def test_disagreeing_needs_no_rationale_in_the_contract(
    agreement: str, rationale: str | None
) -> None:
    # Disagreeing costs no more than agreeing: whether a rationale is needed depends on the
    # referral (the service's rule, tests/service/test_decisions.py), never on the answer.
    data = decision(agreement=agreement, rationale=rationale)
    if rationale is None:
        del data["rationale"]
    assert DecisionIn.model_validate(data).rationale == ""


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
    assert only_loc(DecisionIn, decision(agreement="maybe", priority="standard")) == ("agreement",)


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
    data = decision()
    del data["agreement"]
    with pytest.raises(ValidationError) as info:
        DecisionIn.model_validate(data)
    [error] = error_fields(info.value)
    assert error["field"] == "priority"
    assert error["reason"].startswith("priority is required: the practitioner's own priority")


def test_error_fields_is_json_serialisable() -> None:
    with pytest.raises(ValidationError) as info:
        AgencyEventIn.model_validate(event(kind="eviction"))
    fields = error_fields(info.value)
    assert json.loads(json.dumps(fields)) == fields
    assert fields[0]["field"] == "kind"
    assert "housing" in fields[0]["reason"]
