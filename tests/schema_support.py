"""What the intake contract tests share: every model, valid payloads to override, and the
locations of the errors a payload gets (not collected: it holds no tests)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from triage.schema import (
    REFERRAL_EXAMPLE,
    AgencyEventIn,
    Child,
    DecisionIn,
    Injury,
    OutcomeIn,
    ReferralIn,
    Referrer,
)

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
