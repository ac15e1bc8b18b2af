"""The review queue through the API: the safety rules that put a referral first, the queue
rebuilt from the store at start-up, and its order, filters and pages."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from api_support import (  # noqa: F401  (fixtures)
    T0,
    ClientFactory,
    Switch,
    admin,
    client,
    count,
    db,
    make_client,
    referral,
    scorer,
    settings,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from models.scorer import Scorer
from triage.queue import BANDS, look_by
from triage.settings import Settings
from triage.store import (
    QueueEntryRow,
    add_child,
    add_household,
    add_referral,
    add_score,
    record_decision,
    session_factory,
)

# --- safety rules -----------------------------------------------------------------------------


def test_an_injured_non_mobile_infant_is_reviewed_first_with_or_without_a_model(
    make_client: ClientFactory, scorer: Scorer
) -> None:
    baby = {"born": (T0 - timedelta(days=90)).date(), "child_id": "C-baby"}
    scored = make_client(Switch(scorer)).post("/v1/referrals", json=referral(**baby)).json()
    assert scored["band"] == "Review first"
    assert [f["code"] for f in scored["flags"]] == ["non_mobile_infant_injury"]
    assert "baby under six months" in scored["flags"][0]["words"]
    assert scored["model_band"] in BANDS


def test_no_model_still_flags_an_injured_infant_at_the_top(make_client: ClientFactory) -> None:
    client = make_client(Switch(None))
    client.post("/v1/referrals", json=referral(child_id="C-old"))
    baby = referral(child_id="C-baby", born=(T0 - timedelta(days=60)).date())
    flagged = client.post("/v1/referrals", json=baby).json()
    assert flagged["status"] == "unscored" and flagged["flags"][0]["code"]
    first = client.get("/v1/queue").json()["items"][0]
    assert first["referral_id"] == flagged["referral_id"]


@pytest.mark.parametrize("with_model", [True, False])
def test_a_relatives_photographed_injury_is_reviewed_first(
    make_client: ClientFactory, scorer: Scorer, with_model: bool
) -> None:
    client = make_client(Switch(scorer if with_model else None))
    body = referral(child_id="C-photo")
    body["injury"]["photographed"] = True  # the binding example: a relative's photographs
    got = client.post("/v1/referrals", json=body).json()
    assert [f["code"] for f in got["flags"]] == ["family_photographed_injury"]
    assert got["band"] == ("Review first" if with_model else None)
    assert client.get("/v1/queue").json()["items"][0]["referral_id"] == got["referral_id"]


@pytest.mark.parametrize("with_model", [True, False])
def test_a_third_referral_after_closures_from_two_people_reads_the_history(
    make_client: ClientFactory, scorer: Scorer, db: Engine, with_model: bool
) -> None:
    client = make_client(Switch(scorer if with_model else None))
    earlier_ids = []
    for days, who in ((200, "P-1"), (100, "P-2")):
        earlier = referral(
            child_id="C-rep", received_at=T0 - timedelta(days=days),
            referrer={"type": "school", "referrer_id": who}, injury={"reported": False},
        )  # fmt: skip
        referral_id = client.post("/v1/referrals", json=earlier).json()["referral_id"]
        earlier_ids.append(referral_id)
        with session_factory(db)() as session:
            record_decision(
                session, referral_id=referral_id, decision="no_further_action",
                decided_at=T0 - timedelta(days=days - 1),
            )  # fmt: skip
            session.commit()
    third = referral(
        child_id="C-rep", referrer={"type": "school", "referrer_id": "P-1"},
        injury={"reported": False},
    )  # fmt: skip
    got = client.post("/v1/referrals", json=third).json()
    assert [f["code"] for f in got["flags"]] == ["third_referral_after_nfa"], got
    assert "more than one person" in got["flags"][0]["words"]
    if with_model:
        # Without one of the earlier referrals the history no longer meets the rule.
        url = f"/v1/referrals/{got['referral_id']}/disputes"
        what_if = client.post(url, json={"record_id": earlier_ids[0], "reason": "x"}).json()
        flags = {
            side: [f["code"] for f in what_if["what_if"][side]["flags"]]
            for side in ("before", "after")
        }
        assert flags == {"before": ["third_referral_after_nfa"], "after": []}, what_if


# --- queue ----------------------------------------------------------------------------------


def test_open_referrals_found_in_the_store_are_queued_at_start_up(
    make_client: ClientFactory, db: Engine
) -> None:
    with session_factory(db)() as session:
        add_household(
            session, household={"household_id": "H-1", "deprivation_decile": 2, "synthetic": True}
        )
        for child_id, born in (("C-old", date(2012, 1, 1)), ("C-baby", T0.date() - timedelta(60))):
            add_child(
                session,
                child={"child_id": child_id, "household_id": "H-1", "given_name": "A",
                       "family_name": "B", "date_of_birth": born, "sex": "female",
                       "ethnicity": "white", "disability": False, "deprivation_decile": 2,
                       "synthetic": True},
            )  # fmt: skip
        for referral_id, child_id in (("R-old", "C-old"), ("R-baby", "C-baby")):
            add_referral(
                session,
                referral={"referral_id": referral_id, "source_system": "extract",
                          "source_referral_id": referral_id, "child_id": child_id,
                          "household_id": "H-1", "received_at": T0, "referrer_type": "police",
                          "concerns": ["physical_abuse"], "injury_reported": True,
                          "injury_sites": ["limbs"], "injury_photographed": False,
                          "narrative": "[synthetic]", "synthetic": True},
            )  # fmt: skip
        add_score(
            session, referral_id="R-old", model_version="old/1", probability=0.2,
            probability_low=0.1, probability_high=0.3, band="Standard", reasons=[],
        )  # fmt: skip
        session.commit()
    items = make_client(Switch(None)).get("/v1/queue").json()["items"]
    assert [(i["referral_id"], i["status"]) for i in items] == [
        ("R-baby", "unscored"),
        ("R-old", "scored"),
    ]
    assert items[0]["flags"][0]["code"] == "non_mobile_infant_injury"
    assert (items[1]["band"], items[1]["model_version"]) == ("Standard", "old/1")
    assert count(db, QueueEntryRow) == 2


def test_with_no_model_the_start_up_reads_history_for_the_safety_rules(
    settings: Settings, admin: dict[str, str], db: Engine
) -> None:
    with session_factory(db)() as session:
        add_household(
            session, household={"household_id": "H-1", "deprivation_decile": 2, "synthetic": True}
        )
        add_child(
            session,
            child={"child_id": "C-rep", "household_id": "H-1", "given_name": "A",
                   "family_name": "B", "date_of_birth": date(2015, 1, 1), "sex": "female",
                   "ethnicity": "white", "disability": False, "deprivation_decile": 2,
                   "synthetic": True},
        )  # fmt: skip
        for referral_id, days, who in (("R-1", 200, "P-1"), ("R-2", 100, "P-2"), ("R-3", 0, "P-1")):
            add_referral(
                session,
                referral={"referral_id": referral_id, "source_system": "extract",
                          "source_referral_id": referral_id, "child_id": "C-rep",
                          "household_id": "H-1", "received_at": T0 - timedelta(days=days),
                          "referrer_type": "school", "referrer_id": who, "concerns": ["neglect"],
                          "injury_reported": False, "injury_sites": [],
                          "injury_photographed": False, "narrative": "[synthetic]",
                          "synthetic": True},
            )  # fmt: skip
            if days:
                record_decision(
                    session, referral_id=referral_id, decision="no_further_action",
                    decided_at=T0 - timedelta(days=days - 1),
                )  # fmt: skip
        session.commit()
    app = create_app(settings, scorer_loader=Switch(None), score_backlog_on_start=True)
    with TestClient(app, headers=admin) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (item,) = client.get("/v1/queue").json()["items"]
            if item["flags"]:
                break
            time.sleep(0.05)
    assert item["referral_id"] == "R-3" and item["status"] == "unscored"
    assert [f["code"] for f in item["flags"]] == ["third_referral_after_nfa"]


def test_queue_orders_filters_and_pages(make_client: ClientFactory, scorer: Scorer) -> None:
    switch = Switch(None)
    client = make_client(switch)
    now = datetime.now(UTC).replace(microsecond=0)
    unscored_ids = [
        client.post("/v1/referrals", json=referral(child_id=f"C-u{i}", received_at=T0)).json()[
            "referral_id"
        ]
        for i in range(2)
    ]
    switch.scorer = scorer
    client.post("/v1/admin/reload-model")  # scores those two...
    switch.scorer = None
    client.post("/v1/admin/reload-model")  # ...and a failed reload keeps the model
    concerns = [["neglect"], ["physical_abuse"], ["neglect", "domestic_abuse"], ["missing"]]
    for i, concern in enumerate(concerns):
        body = referral(
            child_id=f"C-s{i}",
            received_at=T0 + timedelta(hours=i) if i < 3 else now - timedelta(minutes=5),
            born=date(2012 + i, 1, 1),
            concerns=concern,
            injury={"reported": False},
        )
        assert client.post("/v1/referrals", json=body).status_code == 201
    baby = referral(child_id="C-baby", born=(T0 - timedelta(days=30)).date())
    flagged_id = client.post("/v1/referrals", json=baby).json()["referral_id"]

    items = client.get("/v1/queue", params={"limit": 200}).json()["items"]
    assert len(items) == 7
    assert items[0]["referral_id"] == flagged_id
    # Within the scored tier: the band's look-by time (receipt plus its hours), then probability.
    keys = [
        (not i["flags"], i["status"] == "scored",
         look_by(datetime.fromisoformat(i["received_at"]), i["band"]), -i["probability"])
        for i in items
    ]  # fmt: skip
    assert keys == sorted(keys)
    assert all(len(i["reasons"]) == 3 for i in items)
    assert set(unscored_ids) <= {i["referral_id"] for i in items}

    paged, cursor = [], None
    while True:
        page = client.get(
            "/v1/queue", params={"limit": 2, "cursor": cursor} if cursor else {"limit": 2}
        ).json()
        paged += [i["referral_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [i["referral_id"] for i in items]

    band = items[-1]["band"]
    by_band = client.get("/v1/queue", params={"band": band}).json()["items"]
    assert by_band and all(i["band"] == band for i in by_band)
    neglect = client.get("/v1/queue", params={"concern": "neglect"}).json()["items"]
    assert len(neglect) == 2 and all("neglect" in i["concerns"] for i in neglect)
    young = client.get("/v1/queue", params={"max_age_months": 12}).json()["items"]
    assert [i["referral_id"] for i in young] == [flagged_id]
    waiting = client.get("/v1/queue", params={"waiting_hours": 24}).json()["items"]
    assert len(waiting) == 6 and all(i["waiting_hours"] >= 24 for i in waiting)
    assert all(i["overdue"] for i in waiting)

    bad = client.get("/v1/queue", params={"cursor": "bm9wZQ"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"
    assert client.get("/v1/queue", params={"band": "Urgent"}).status_code == 422
    assert client.get("/v1/queue", params={"concern": "gossip"}).status_code == 422
