"""Benchmark: online features for one referral whose child has about 50 prior records, on SQLite.

Prints p50/p99 of ``features.online.online_features`` (the indexed queries plus the
pointwise evaluation with provenance) and the same figures for a named peer run in the same
process on the same referrals: reading the same history with ``pandas.read_sql`` and running
the batch builder on it (reusing the batch code online).

    .venv/bin/python bench/online_bench.py [--referrals 50000] [--calls 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

from features.batch import build_features
from features.online import online_features
from triage.store.engine import make_engine, session_factory
from triage.store.loader import load_extract
from triage.store.migrate import upgrade
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

TARGET_PRIOR = 50


def prior_record_counts(world) -> pd.Series:
    """For each referral, referrals and events of its child or household strictly before it."""
    refs = world.referrals[["referral_id", "child_id", "household_id", "received_at"]]
    events = world.events[["household_id", "occurred_at"]]
    hh_refs = refs.rename(columns={"received_at": "t"})[["household_id", "t"]]
    hh_events = events.rename(columns={"occurred_at": "t"})
    records = pd.concat([hh_refs, hh_events]).sort_values(["household_id", "t"])
    counts = {}
    for household, group in refs.groupby("household_id"):
        times = records.loc[records["household_id"] == household, "t"].to_numpy()
        before = np.searchsorted(times, group["received_at"].to_numpy(), side="left")
        counts.update(zip(group["referral_id"], before, strict=True))
    return pd.Series(counts)


def peer_build(connection, child_id: str, household_id: str, received_at) -> pd.DataFrame:
    """The peer: read the history with pandas and run the batch builder on it."""
    # SQLite holds naive UTC wall times in SQLAlchemy's format; compare like with like.
    stamp = pd.Timestamp(received_at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S.%f")
    params = {"c": child_id, "h": household_id, "t": stamp}
    refs = pd.read_sql(
        text(
            "SELECT referral_id, child_id, household_id, received_at, referrer_type,"
            " referrer_relationship, referrer_id, concerns, injury_reported, injury_sites"
            " FROM referrals WHERE (child_id = :c OR household_id = :h) AND received_at <= :t"
        ),
        connection,
        params=params,
    )
    events = pd.read_sql(
        text(
            "SELECT event_id, child_id, household_id, occurred_at, agency, kind FROM events"
            " WHERE (child_id = :c OR household_id = :h) AND occurred_at < :t"
        ),
        connection,
        params=params,
    )
    decisions = pd.read_sql(
        text(
            "SELECT d.referral_id, d.decided_at, d.decision FROM decisions d JOIN referrals r"
            " ON r.referral_id = d.referral_id WHERE r.child_id = :c AND d.decided_at < :t"
        ),
        connection,
        params=params,
    )
    children = pd.read_sql(
        text(
            "SELECT child_id, household_id, date_of_birth FROM children"
            " WHERE household_id = :h OR child_id = :c"
        ),
        connection,
        params=params,
    )
    memberships = pd.read_sql(
        text(
            "SELECT membership_id, m.person_id, household_id, role, joined_at, left_at,"
            " p.date_of_birth FROM household_memberships m JOIN persons p"
            " ON p.person_id = m.person_id"
            " WHERE (household_id = :h OR m.person_id = :c) AND joined_at < :t"
        ),
        connection,
        params=params,
    )
    persons = memberships[["person_id", "date_of_birth"]].drop_duplicates("person_id")
    for frame, column in (
        (refs, "received_at"),
        (events, "occurred_at"),
        (decisions, "decided_at"),
        (memberships, "joined_at"),
        (memberships, "left_at"),
    ):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="mixed")
    for column in ("concerns", "injury_sites"):
        refs[column] = refs[column].str.replace(r'[\[\]" ]', "", regex=True).str.replace(",", ";")
    return build_features(
        children, refs, events, decisions, persons=persons, memberships=memberships
    )


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ms = np.array(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=3_000)
    args = parser.parse_args()

    world = generate_world(WorldParams(n_referrals=args.referrals))
    counts = prior_record_counts(world)
    near = counts[(counts - TARGET_PRIOR).abs() <= 3]
    chosen = near.sample(min(20, len(near)), random_state=0).index.tolist()
    refs = world.referrals.set_index("referral_id")

    with tempfile.TemporaryDirectory() as tmp:
        write_extract(world, Path(tmp) / "extract")
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        load_extract(Path(tmp) / "extract", url=url, progress=False)
        engine = make_engine(url)
        with session_factory(engine)() as session:
            for referral_id in chosen:  # warm the statement cache and the page cache
                online_features(session, referral_id=referral_id)
            ours = []
            for i in range(args.calls):
                referral_id = chosen[i % len(chosen)]
                start = time.perf_counter()
                online_features(session, referral_id=referral_id)
                ours.append(time.perf_counter() - start)
            expected = online_features(session, referral_id=chosen[0]).vector()
        peer = []
        with engine.connect() as connection:
            row = refs.loc[chosen[0]]
            built = peer_build(connection, row.child_id, row.household_id, row.received_at)
            got = built.loc[chosen[0]]
            assert all(np.isclose(got[k], v, equal_nan=True) for k, v in expected.items())
            for i in range(max(200, args.calls // 10)):
                referral_id = chosen[i % len(chosen)]
                row = refs.loc[referral_id]
                start = time.perf_counter()
                peer_build(
                    connection, row.child_id, row.household_id, row.received_at.to_pydatetime()
                )
                peer.append(time.perf_counter() - start)
        engine.dispose()

    our_p50, our_p99 = percentiles(ours)
    peer_p50, peer_p99 = percentiles(peer)
    print(f"{len(chosen)} referrals with {TARGET_PRIOR}±3 prior records, {len(ours)} calls")
    print(f"online_features (queries + {len(expected)} signals + provenance): "
          f"p50 {our_p50:.2f} ms, "
          f"p99 {our_p99:.2f} ms (target p99 ≤ 2 ms)")  # fmt: skip
    print(f"peer, pandas.read_sql + batch builder: p50 {peer_p50:.2f} ms, p99 {peer_p99:.2f} ms")
    print(f"ratio (peer / ours): p50 {peer_p50 / our_p50:.1f}x, p99 {peer_p99 / our_p99:.1f}x")
    print("within target" if our_p99 <= 2.0 else "OUTSIDE TARGET")


if __name__ == "__main__":
    main()
