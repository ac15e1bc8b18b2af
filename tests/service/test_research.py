"""Researchers' aggregates: quarters, age groups at the edges, voices (suppression: own file)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from service.research import (
    decisions_by_group,
    known_reason_code,
    quarter_bounds,
    quarter_of,
)
from triage.store.statistics import DecisionFact
from triage.vocab import VOICES


def test_quarters_are_fixed_calendar_periods() -> None:
    assert quarter_bounds("2026-Q4") == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert quarter_bounds("2026-Q2")[1] == datetime(2026, 7, 1, tzinfo=UTC)
    assert quarter_of(datetime(2026, 11, 26, tzinfo=UTC)) == "2026-Q4"
    with pytest.raises(ValueError):
        quarter_bounds("2026-Q0")


def test_children_outside_the_audit_age_bands_get_their_own_groups() -> None:
    received = datetime(2026, 4, 1, tzinfo=UTC)
    pairs = {}
    facts = []
    for n, born in enumerate((date(2000, 1, 1), date(2026, 9, 1), date(2020, 1, 1))):
        referral = SimpleNamespace(
            received_at=received, referrer_type="police", referrer_relationship=None
        )
        child = SimpleNamespace(
            date_of_birth=born, sex="male", ethnicity="white", disability=False,
            deprivation_decile=None,
        )  # fmt: skip
        pairs[f"R{n}"] = (referral, child)
        facts.append(
            DecisionFact(
                referral_id=f"R{n}",
                decided_at=received,
                decision="assessment",
                agreement="agree",
                reason_codes=(),
                band="Lower",
            )
        )
    rows = decisions_by_group(facts, pairs, by="age_band", min_count=10)  # type: ignore[arg-type]
    assert sorted(r["group"] for r in rows) == ["18 or over", "5-10", "before birth"]


def test_decisions_group_by_whose_voice_referred() -> None:
    received = datetime(2026, 4, 1, tzinfo=UTC)
    child = SimpleNamespace(
        date_of_birth=date(2020, 1, 1), sex="male", ethnicity="white", disability=False,
        deprivation_decile=3,
    )  # fmt: skip
    referrers = [("police", None), ("individual", "relative"), ("individual", "family_friend"),
                 ("individual", "neighbour"), ("health", "gp"), ("anonymous", None)]  # fmt: skip
    pairs, facts = {}, []
    for n, (kind, relationship) in enumerate(referrers * 10):
        referral = SimpleNamespace(
            received_at=received, referrer_type=kind, referrer_relationship=relationship
        )
        pairs[f"R{n}"] = (referral, child)
        facts.append(
            DecisionFact(f"R{n}", received, "assessment", "agree", (), "Standard")  # type: ignore[arg-type]
        )
    by_voice = decisions_by_group(facts, pairs, by="referrer_voice", min_count=10)  # type: ignore[arg-type]
    assert {r["group"]: r["decisions"] for r in by_voice} == {
        "professional": 20,
        "family or friend": 20,
        "other individual": 10,
        "anonymous": 10,
    }
    assert {r["group"] for r in by_voice} <= set(VOICES)
    by_relationship = decisions_by_group(facts, pairs, by="referrer_relationship", min_count=10)  # type: ignore[arg-type]
    assert {r["group"] for r in by_relationship} == {
        "none recorded", "relative", "family_friend", "neighbour", "gp",
    }  # fmt: skip


def test_only_known_reason_codes_leave_the_service() -> None:
    assert known_reason_code("professional_judgement") == "professional_judgement"
    assert known_reason_code("child_age_months") == "child_age_months"
    assert known_reason_code("sam_doe_said_so") == "other"
