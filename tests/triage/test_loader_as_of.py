"""Loading a synthetic world as of a moment (``make demo``: as of now), issue 22.

The extract on disk stays the seed's own world; only the store sees it moved in time, by one
amount for every date and time, so its open queue is today's and nothing else changes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from triage.store import make_engine, session_factory
from triage.store.loader import load_extract
from triage.store.tables import ChildRow, DecisionRow, EventRow, ReferralRow
from triage.store.timeshift import extract_end, shift_frame
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

AS_OF = datetime(2027, 3, 17, 15, 30, tzinfo=UTC)  # a Wednesday, months after the world's end


@pytest.fixture(scope="module")
def world_extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic world on disk."""
    directory = tmp_path_factory.mktemp("as-of-world")
    write_extract(generate_world(WorldParams(n_referrals=2_000, seed=7)), directory)
    return directory


def _digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_a_world_loaded_as_of_a_moment_ends_then_and_is_otherwise_the_same(
    world_extract: Path, migrated_url: str, tmp_path: Path
) -> None:
    before = _digest(world_extract)
    load_extract(world_extract, url=migrated_url, progress=False, as_of=AS_OF)
    assert _digest(world_extract) == before, "the extract on disk is not touched"
    params = WorldParams(n_referrals=2_000, seed=7)
    end = datetime.combine(params.end, datetime.min.time(), UTC)
    by = AS_OF - end
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            received = session.execute(
                select(ReferralRow.referral_id, ReferralRow.received_at, ReferralRow.status)
            ).all()
            open_times = [r.received_at for r in received if r.status == "open"]
            assert open_times and max(r.received_at for r in received) <= AS_OF
            # The open queue is the world's last days, now ending at AS_OF.
            assert min(open_times) >= AS_OF - timedelta(days=params.open_days + 1)
            # Each open referral has waited as long at AS_OF as it had at the world's end.
            original_open = pd.read_parquet(world_extract / "referrals.parquet")
            decided = set(pd.read_parquet(world_extract / "decisions.parquet")["referral_id"])
            waited = sorted(
                end - pd.Timestamp(t).to_pydatetime()
                for rid, t in zip(
                    original_open["referral_id"], original_open["received_at"], strict=True
                )
                if rid not in decided
            )
            assert sorted(AS_OF - t for t in open_times) == waited
            original = pd.read_parquet(world_extract / "referrals.parquet")
            first = original.sort_values("referral_id").iloc[0]
            stored = dict((r.referral_id, r.received_at) for r in received)
            moved = (
                stored[first["referral_id"]] - pd.Timestamp(first["received_at"]).to_pydatetime()
            )
            assert moved == by
            # Ages at referral kept (dates of birth moved by the same whole days).
            child = session.get(ChildRow, first["child_id"])
            assert child is not None
            children = pd.read_parquet(world_extract / "children.parquet").set_index("child_id")
            born = children.loc[first["child_id"], "date_of_birth"]
            assert (child.date_of_birth - pd.Timestamp(born).date()).days == round(
                by / timedelta(days=1)
            )
            latest_event = session.scalar(select(func.max(EventRow.occurred_at)))
            latest_decision = session.scalar(select(func.max(DecisionRow.decided_at)))
            assert latest_event is not None and latest_event <= AS_OF + timedelta(days=1)
            assert latest_decision is not None and latest_decision <= AS_OF
    finally:
        engine.dispose()


def test_the_end_of_an_extract_without_a_manifest_is_its_last_referral() -> None:
    referrals = pd.DataFrame(
        {"received_at": [datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)]},
        dtype=object,
    )
    assert extract_end({}, referrals) == datetime(2026, 1, 5, tzinfo=UTC)
    assert extract_end({"window": {"end": "2026-11-01"}}, referrals) == datetime(
        2026, 11, 1, tzinfo=UTC
    )


def test_shift_frame_moves_dates_and_times_and_leaves_the_rest() -> None:
    frame = pd.DataFrame(
        {
            "at": [datetime(2026, 1, 1, 9, tzinfo=UTC), None],
            "born": [datetime(2020, 5, 1).date(), None],
            "name": ["a", "b"],
        },
        dtype=object,
    )
    moved = shift_frame(frame, timedelta(days=3, hours=13))
    assert moved["at"].tolist() == [datetime(2026, 1, 4, 22, tzinfo=UTC), None]
    assert moved["born"].tolist() == [datetime(2020, 5, 5).date(), None]  # 3.5 days round to 4
    assert moved["name"].tolist() == ["a", "b"]
    assert frame["at"].iloc[0] == datetime(2026, 1, 1, 9, tzinfo=UTC), "the input is unchanged"
