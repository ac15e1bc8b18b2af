"""Benchmark: the batch feature builder on an extract of N referrals (default 1,000,000).

Synthesises a world, writes its extract to a temporary directory (not timed), then runs each
measurement in a fresh process (so peak RSS, ``ru_maxrss``, is that run's alone; reading the
Parquet files is not timed, but it counts towards the peak):

* ours, full catalogue: ``build_features`` for every signal (targets: 10 s, 4 GB on 2 cores);
* ours, subset: ``build_features`` for the history signals the peer also computes;
* the peer, DuckDB SQL window queries over the same Parquet files (``threads=2``): the tables
  are loaded into DuckDB in memory first (not timed, like our ``read_parquet``), then the query
  is timed up to a pandas DataFrame, as ours is. Household event signals follow a child who
  moved (joins on the memberships), as ours do.

Medians over the repeats; the three runs of a repeat are interleaved so machine noise hits
them alike. The peer's values must equal ours on every referral, or the script fails.

    .venv/bin/python bench/features_bench.py [--referrals 1000000] [--repeats 3] [--delays]

``--delays`` gives the events sharing delays (``recorded_at``) when the world has none, so the
time rule's late-recorded path is measured and checked against the peer too.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TABLES = ("children", "referrals", "events", "decisions")
TARGET_SECONDS, TARGET_GB = 10.0, 4.0

# The signals the peer computes: every history signal of the catalogue, so every aggregation
# kind over records (count, exists, distinct_count, days_since, max_same_concern), both
# entities and all three record sources.
SUBSET: tuple[str, ...] = (
    "prior_referrals_child_90d",
    "prior_referrals_child_365d",
    "prior_referrals_child_all",
    "prior_referrals_household_365d",
    "distinct_referrers_365d",
    "relative_friend_concerns_365d",
    "prior_injury_reports_365d",
    "repeat_same_concern_365d",
    "prior_nfa_closures_365d",
    "days_since_last_referral",
    "police_da_incidents_household_365d",
    "household_adult_violence_history",
    "ed_attendances_365d",
    "ed_injury_attendances_365d",
    "school_absence_concerns_90d",
    "school_safeguarding_concerns_365d",
    "missed_health_appointments_365d",
    "distinct_agencies_90d",
    "prior_s47_ever",
    "prior_cp_plan_ever",
    "prior_cin_ever",
)
DAYS_SINCE = ("days_since_last_referral",)

CONCERNS = (
    "physical_abuse",
    "neglect",
    "emotional_abuse",
    "sexual_abuse",
    "domestic_abuse",
    "parental_mental_health",
    "parental_substance_misuse",
    "child_mental_health",
    "exploitation",
    "missing",
    "other",
)

# Setup, not timed. Times are integer ms since the epoch, FLOORED. DuckDB's own ``epoch_ms``
# rounds to the nearest ms (2.0.1: 00:00:00.1239 -> 124): with it, days_since_last_referral
# differed from ours by 1 ms on 8,673 of 49,858 referrals at 50,000 (and ordering or window
# edges can flip for records under 1 ms apart). ``//`` truncates towards zero, so the
# remainder is taken off first, to floor negative times too.
SETUP_SQL = """
SET enable_progress_bar = false;
CREATE MACRO floor_ms(ts) AS (epoch_us(ts) - ((epoch_us(ts) % 1000) + 1000) % 1000) // 1000;
CREATE TABLE referrals AS
    SELECT referral_id, child_id, household_id, received_at, referrer_relationship,
           referrer_id, concerns, injury_reported
    FROM read_parquet('{dir}/referrals.parquet');
-- known_ms: when the event became known (recorded_at; occurred_at when absent or earlier).
CREATE TABLE events AS
    SELECT event_id, child_id, household_id, occurred_at, agency, kind,
           floor_ms(greatest(coalesce(recorded_at, occurred_at), occurred_at)) AS known_ms
    FROM (SELECT *{recorded} FROM read_parquet('{dir}/events.parquet'));
CREATE TABLE decisions AS
    SELECT referral_id, decided_at, decision FROM read_parquet('{dir}/decisions.parquet');
"""
# Who lived where: the extract's memberships, or each child in its household since birth.
MEMBERSHIPS_SQL = """
SET TimeZone = 'UTC';
CREATE TABLE memberships AS
    SELECT person_id, household_id, joined_at, left_at
    FROM read_parquet('{dir}/household_memberships.parquet');
"""
DERIVED_MEMBERSHIPS_SQL = """
SET TimeZone = 'UTC';
CREATE TABLE memberships AS
    SELECT child_id AS person_id, household_id,
           CAST(CAST(date_of_birth AS DATE) AS TIMESTAMPTZ) AS joined_at,
           NULL::TIMESTAMPTZ AS left_at
    FROM read_parquet('{dir}/children.parquet');
"""

# Each referral is a query point (referral_id not null) and, for later referrals, a record.
# Windows are on occurred_at; an event counts only if also recorded before the referral, so
# the events recorded late (occurred before a referral of their child or household, recorded
# at or after it) are joined to those referrals and taken off the window counts; distinct
# agencies are counted again, from known events, for the referrals with any.
# The frames end at ``1 PRECEDING`` on integer ms, so records at the same ms, the referral
# itself included, never count; ``<D days in ms> PRECEDING`` starts the frame at exactly
# t - D days, inclusive. DuckDB 2.0.1 supports ``count(DISTINCT x) OVER (... RANGE ...)``
# (checked on a hand-made example), so distinct counts are plain window aggregates. The
# same-concern maximum unnests each referral's concerns and counts per (child, concern): one
# window instead of eleven filtered ones (1.5x faster for the whole query at 50,000).
_KNOWN_CONCERNS = ", ".join(f"'{c}'" for c in CONCERNS)
QUERY = f"""
WITH refs AS (
    SELECT referral_id, child_id, household_id, floor_ms(received_at) AS t_ms, referrer_id,
           coalesce(referrer_relationship IN ('relative', 'family_friend'), false)
               AS rel_friend,
           injury_reported,
           string_split(coalesce(concerns, ''), ';') AS concern_list
    FROM referrals
),
child_rows AS (
    SELECT child_id AS entity, t_ms, referral_id, true AS is_ref, NULL::VARCHAR AS kind,
           referrer_id, rel_friend, injury_reported, false AS nfa
    FROM refs
    UNION ALL BY NAME
    SELECT child_id AS entity, floor_ms(occurred_at) AS t_ms, NULL AS referral_id,
           false AS is_ref, kind, NULL AS referrer_id, false AS rel_friend,
           false AS injury_reported, false AS nfa
    FROM events
    WHERE child_id IS NOT NULL
      AND kind IN ('ed_attendance', 'ed_injury_attendance', 'absence_concern',
                   'safeguarding_concern', 'missed_appointment', 's47_enquiry',
                   'cp_plan_start', 'child_in_need')
    UNION ALL BY NAME
    -- a decision belongs to its referral's child, dated when it was decided
    SELECT r.child_id AS entity, floor_ms(d.decided_at) AS t_ms, NULL AS referral_id,
           false AS is_ref, NULL AS kind, NULL AS referrer_id, false AS rel_friend,
           false AS injury_reported, true AS nfa
    FROM decisions d JOIN refs r USING (referral_id)
    WHERE d.decision = 'no_further_action'
),
late_events AS (
    SELECT child_id, household_id, floor_ms(occurred_at) AS t_ms, known_ms, kind, agency
    FROM events WHERE known_ms > floor_ms(occurred_at)
),
late_child AS (
    SELECT r.referral_id,
        count(*) FILTER (WHERE e.kind = 'ed_attendance' AND e.t_ms >= r.t_ms - 31536000000)
            AS ed_attendances_365d,
        count(*) FILTER (WHERE e.kind = 'ed_injury_attendance'
                         AND e.t_ms >= r.t_ms - 31536000000) AS ed_injury_attendances_365d,
        count(*) FILTER (WHERE e.kind = 'absence_concern' AND e.t_ms >= r.t_ms - 7776000000)
            AS school_absence_concerns_90d,
        count(*) FILTER (WHERE e.kind = 'safeguarding_concern'
                         AND e.t_ms >= r.t_ms - 31536000000) AS school_safeguarding_concerns_365d,
        count(*) FILTER (WHERE e.kind = 'missed_appointment' AND e.t_ms >= r.t_ms - 31536000000)
            AS missed_health_appointments_365d,
        count(*) FILTER (WHERE e.kind = 's47_enquiry') AS prior_s47_ever,
        count(*) FILTER (WHERE e.kind = 'cp_plan_start') AS prior_cp_plan_ever,
        count(*) FILTER (WHERE e.kind = 'child_in_need') AS prior_cin_ever
    FROM refs r
    JOIN late_events e ON e.child_id = r.child_id AND e.t_ms < r.t_ms AND e.known_ms >= r.t_ms
    GROUP BY r.referral_id
),
late_household_pairs AS (
    SELECT r.referral_id, r.t_ms AS q, e.t_ms, e.kind
    FROM refs r
    JOIN late_events e ON e.household_id = r.household_id AND e.t_ms < r.t_ms
                      AND e.known_ms >= r.t_ms
),
late_household AS (
    SELECT referral_id,
        count(*) FILTER (WHERE kind = 'domestic_abuse_incident' AND t_ms >= q - 31536000000)
            AS da,
        count(*) FILTER (WHERE kind = 'adult_violence_offence') AS violence
    FROM late_household_pairs GROUP BY referral_id
),
child_window AS (
    SELECT referral_id,
        count(*) FILTER (WHERE is_ref) OVER w90 AS prior_referrals_child_90d,
        count(*) FILTER (WHERE is_ref) OVER w365 AS prior_referrals_child_365d,
        count(*) FILTER (WHERE is_ref) OVER wall AS prior_referrals_child_all,
        count(DISTINCT referrer_id) OVER w365 AS distinct_referrers_365d,
        count(*) FILTER (WHERE is_ref AND rel_friend) OVER w365
            AS relative_friend_concerns_365d,
        count(*) FILTER (WHERE is_ref AND injury_reported) OVER w365
            AS prior_injury_reports_365d,
        count(*) FILTER (WHERE nfa) OVER w365 AS prior_nfa_closures_365d,
        (t_ms - max(t_ms) FILTER (WHERE is_ref) OVER wall) / 86400000.0
            AS days_since_last_referral,
        count(*) FILTER (WHERE kind = 'ed_attendance') OVER w365 AS ed_attendances_365d,
        count(*) FILTER (WHERE kind = 'ed_injury_attendance') OVER w365
            AS ed_injury_attendances_365d,
        count(*) FILTER (WHERE kind = 'absence_concern') OVER w90
            AS school_absence_concerns_90d,
        count(*) FILTER (WHERE kind = 'safeguarding_concern') OVER w365
            AS school_safeguarding_concerns_365d,
        count(*) FILTER (WHERE kind = 'missed_appointment') OVER w365
            AS missed_health_appointments_365d,
        count(*) FILTER (WHERE kind = 's47_enquiry') OVER wall AS prior_s47_ever,
        count(*) FILTER (WHERE kind = 'cp_plan_start') OVER wall AS prior_cp_plan_ever,
        count(*) FILTER (WHERE kind = 'child_in_need') OVER wall AS prior_cin_ever
    FROM child_rows
    WINDOW
        w90 AS (PARTITION BY entity ORDER BY t_ms
                RANGE BETWEEN 7776000000 PRECEDING AND 1 PRECEDING),
        w365 AS (PARTITION BY entity ORDER BY t_ms
                 RANGE BETWEEN 31536000000 PRECEDING AND 1 PRECEDING),
        wall AS (PARTITION BY entity ORDER BY t_ms
                 RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    QUALIFY referral_id IS NOT NULL
),
child_features AS (
    SELECT w.referral_id, w.prior_referrals_child_90d, w.prior_referrals_child_365d,
        w.prior_referrals_child_all, w.distinct_referrers_365d,
        w.relative_friend_concerns_365d, w.prior_injury_reports_365d,
        w.prior_nfa_closures_365d, w.days_since_last_referral,
        w.ed_attendances_365d - coalesce(l.ed_attendances_365d, 0) AS ed_attendances_365d,
        w.ed_injury_attendances_365d - coalesce(l.ed_injury_attendances_365d, 0)
            AS ed_injury_attendances_365d,
        w.school_absence_concerns_90d - coalesce(l.school_absence_concerns_90d, 0)
            AS school_absence_concerns_90d,
        w.school_safeguarding_concerns_365d - coalesce(l.school_safeguarding_concerns_365d, 0)
            AS school_safeguarding_concerns_365d,
        w.missed_health_appointments_365d - coalesce(l.missed_health_appointments_365d, 0)
            AS missed_health_appointments_365d,
        w.prior_s47_ever - coalesce(l.prior_s47_ever, 0) > 0 AS prior_s47_ever,
        w.prior_cp_plan_ever - coalesce(l.prior_cp_plan_ever, 0) > 0 AS prior_cp_plan_ever,
        w.prior_cin_ever - coalesce(l.prior_cin_ever, 0) > 0 AS prior_cin_ever
    FROM child_window w LEFT JOIN late_child l USING (referral_id)
),
household_rows AS (
    SELECT household_id AS entity, t_ms, referral_id, true AS is_ref,
           NULL::VARCHAR AS kind, NULL::VARCHAR AS agency
    FROM refs
    UNION ALL
    SELECT household_id, floor_ms(occurred_at), NULL, false, kind, agency
    FROM events
    WHERE household_id IS NOT NULL
),
household_window AS (
    SELECT referral_id,
        count(*) FILTER (WHERE is_ref) OVER w365 AS prior_referrals_household_365d,
        count(*) FILTER (WHERE kind = 'domestic_abuse_incident') OVER w365
            AS police_da_incidents_household_365d,
        count(*) FILTER (WHERE kind = 'adult_violence_offence') OVER wall
            AS household_adult_violence_history,
        count(DISTINCT agency) OVER w90 AS distinct_agencies_90d
    FROM household_rows
    WINDOW
        w90 AS (PARTITION BY entity ORDER BY t_ms
                RANGE BETWEEN 7776000000 PRECEDING AND 1 PRECEDING),
        w365 AS (PARTITION BY entity ORDER BY t_ms
                 RANGE BETWEEN 31536000000 PRECEDING AND 1 PRECEDING),
        wall AS (PARTITION BY entity ORDER BY t_ms
                 RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    QUALIFY referral_id IS NOT NULL
),
-- A child who moved brings the events of each earlier household from while the child lived
-- there (joined <= t < left); DISTINCT: overlapping stays in one household count an event once.
stays AS (
    SELECT person_id AS child_id, household_id, floor_ms(joined_at) AS j,
           coalesce(floor_ms(left_at), 2305843009213693951) AS l
    FROM memberships
),
follow AS (
    SELECT DISTINCT r.referral_id, r.t_ms AS q, e.event_id, floor_ms(e.occurred_at) AS t_ms,
           e.kind, e.agency
    FROM refs r
    JOIN stays s ON s.child_id = r.child_id AND s.household_id <> r.household_id
                AND s.j < r.t_ms
    JOIN events e ON e.household_id = s.household_id
                 AND floor_ms(e.occurred_at) >= s.j AND floor_ms(e.occurred_at) < s.l
                 AND floor_ms(e.occurred_at) < r.t_ms AND e.known_ms < r.t_ms
),
follow_counts AS (
    SELECT referral_id,
        count(*) FILTER (WHERE kind = 'domestic_abuse_incident' AND t_ms >= q - 31536000000)
            AS da_extra,
        bool_or(kind = 'adult_violence_offence') AS violence_extra
    FROM follow GROUP BY referral_id
),
recount AS (  -- referrals whose distinct agencies the window alone does not give
    SELECT referral_id FROM follow WHERE t_ms >= q - 7776000000
    UNION
    SELECT referral_id FROM late_household_pairs WHERE t_ms >= q - 7776000000
),
follow_agencies AS (
    SELECT c.referral_id, count(DISTINCT u.agency) AS n
    FROM recount c LEFT JOIN (
        SELECT referral_id, agency FROM follow WHERE t_ms >= q - 7776000000
        UNION ALL
        SELECT r.referral_id, e.agency
        FROM refs r JOIN events e ON e.household_id = r.household_id
             AND floor_ms(e.occurred_at) >= r.t_ms - 7776000000
             AND floor_ms(e.occurred_at) < r.t_ms AND e.known_ms < r.t_ms
        WHERE r.referral_id IN (SELECT referral_id FROM recount)
    ) u USING (referral_id)
    GROUP BY c.referral_id
),
household_features AS (
    SELECT h.referral_id, h.prior_referrals_household_365d,
        h.police_da_incidents_household_365d + coalesce(c.da_extra, 0) - coalesce(l.da, 0)
            AS police_da_incidents_household_365d,
        h.household_adult_violence_history - coalesce(l.violence, 0) > 0
            OR coalesce(c.violence_extra, false) AS household_adult_violence_history,
        coalesce(a.n, h.distinct_agencies_90d) AS distinct_agencies_90d
    FROM household_window h
    LEFT JOIN follow_counts c USING (referral_id)
    LEFT JOIN follow_agencies a USING (referral_id)
    LEFT JOIN late_household l USING (referral_id)
),
concern_features AS (
    SELECT referral_id, max(n) AS repeat_same_concern_365d
    FROM (
        SELECT referral_id,
            count(*) OVER (PARTITION BY child_id, concern ORDER BY t_ms
                           RANGE BETWEEN 31536000000 PRECEDING AND 1 PRECEDING) AS n
        FROM (SELECT referral_id, child_id, t_ms,
                     unnest(list_distinct(concern_list)) AS concern
              FROM refs)
        WHERE concern IN ({_KNOWN_CONCERNS})
    )
    GROUP BY referral_id
)
SELECT referral_id,
    {", ".join(f"{n}::DOUBLE AS {n}" for n in SUBSET if n != "repeat_same_concern_365d")},
    coalesce(repeat_same_concern_365d, 0)::DOUBLE AS repeat_same_concern_365d
FROM child_features
JOIN household_features USING (referral_id)
LEFT JOIN concern_features USING (referral_id)  -- referrals raising no concern have no rows
"""


def _peak_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def child_run(mode: str, directory: Path, out: str) -> None:
    """One measured run in this (fresh) process; prints JSON, writes values if ``out``."""
    import time

    if mode == "duckdb":
        import duckdb
        import pyarrow.parquet as pq

        con = duckdb.connect(config={"threads": 2})
        events_columns = pq.read_schema(directory / "events.parquet").names
        # An extract without recorded_at: every event known when it occurred.
        recorded = "" if "recorded_at" in events_columns else ", NULL::TIMESTAMPTZ AS recorded_at"
        con.execute(SETUP_SQL.format(dir=directory.as_posix(), recorded=recorded))
        has_memberships = (directory / "household_memberships.parquet").exists()
        people_sql = MEMBERSHIPS_SQL if has_memberships else DERIVED_MEMBERSHIPS_SQL
        con.execute(people_sql.format(dir=directory.as_posix()))
        start = time.perf_counter()
        result = con.sql(QUERY).df()
        seconds = time.perf_counter() - start
        result = result.set_index("referral_id")
    else:
        import pandas as pd

        from features.batch import build_features
        from features.catalogue import CATALOGUE, SIGNALS

        frames = {t: pd.read_parquet(directory / f"{t}.parquet") for t in TABLES}
        people = {
            key: pd.read_parquet(directory / f"{table}.parquet")
            for key, table in (("persons", "persons"), ("memberships", "household_memberships"))
            if (directory / f"{table}.parquet").exists()
        }  # without them, each child lives in its household since birth
        signals = CATALOGUE if mode == "full" else tuple(SIGNALS[n] for n in SUBSET)
        start = time.perf_counter()
        result = build_features(*(frames[t] for t in TABLES), signals=signals, **people)
        seconds = time.perf_counter() - start
    peak = _peak_gb()
    if out:
        result[list(SUBSET)].to_parquet(out)
    print(json.dumps({"seconds": seconds, "peak_gb": peak, "rows": len(result)}))


def measure(mode: str, directory: Path, out: str = "") -> dict:
    """Run one measurement in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(directory), out],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"{mode} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(ours_path: Path, peer_path: Path) -> None:
    """Fail loudly unless the peer's values equal ours for every subset signal and referral."""
    import pandas as pd

    ours = pd.read_parquet(ours_path)
    peer = pd.read_parquet(peer_path)
    assert ours.index.is_unique, "duplicate referral_id in our output"
    assert len(peer) == len(ours), f"row counts differ: DuckDB {len(peer)}, ours {len(ours)}"
    peer = peer.reindex(ours.index)
    assert not peer.isna().all(axis=1).any(), "DuckDB output lacks some referral_ids"
    bad = []
    for name in SUBSET:
        a, b = ours[name].to_numpy(float), peer[name].to_numpy(float)
        if name in DAYS_SINCE:
            same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 1e-9)
        else:
            same = a == b
        if not same.all():
            wrong = np.flatnonzero(~same)
            examples = ", ".join(
                f"{ours.index[i]}: ours {float(a[i])!r}, DuckDB {float(b[i])!r}" for i in wrong[:3]
            )
            bad.append(f"{name}: {wrong.size} referrals differ (e.g. {examples})")
    if bad:
        raise AssertionError("DuckDB and our builder disagree:\n  " + "\n  ".join(bad))


def add_delays(directory: Path, seed: int = 0) -> None:
    """Give the extract's events ``recorded_at`` unless they have it: a fifth shared at once,
    most within days (exponential, mean 7), one in twenty 30 to 400 days late."""
    import pandas as pd

    path = directory / "events.parquet"
    events = pd.read_parquet(path)
    if "recorded_at" in events and events["recorded_at"].notna().any():
        return
    rng = np.random.default_rng(seed)
    n = len(events)
    days = np.where(rng.random(n) < 0.05, rng.uniform(30, 400, n), rng.exponential(7.0, n))
    days[rng.random(n) < 0.2] = 0.0
    delay = pd.to_timedelta(np.round(days * 86_400_000).astype(np.int64), unit="ms")
    events["recorded_at"] = events["occurred_at"] + delay
    events.to_parquet(path, index=False)


def main() -> None:
    """Run the benchmark and print the figures."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_run(sys.argv[2], Path(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--add-delays":
        add_delays(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--delays",
        action="store_true",
        help="give the events sharing delays (recorded_at) when the world has none",
    )
    args = parser.parse_args()

    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "extract"
        world = generate_world(WorldParams(n_referrals=args.referrals))
        write_extract(world, directory)
        if args.delays:  # in a process of its own: a child's peak RSS counts its parent's
            subprocess.run([sys.executable, __file__, "--add-delays", str(directory)], check=True)
        rows = {t: v for t, v in world.manifest["rows"].items() if t in TABLES}
        del world
        gc.collect()

        full, subset, peer = [], [], []
        ours_out, peer_out = Path(tmp) / "ours.parquet", Path(tmp) / "peer.parquet"
        for i in range(args.repeats):
            full.append(measure("full", directory))
            subset.append(measure("subset", directory, str(ours_out) if i == 0 else ""))
            peer.append(measure("duckdb", directory, str(peer_out) if i == 0 else ""))
        compare(ours_out, peer_out)

    def med(runs: list[dict]) -> float:
        return statistics.median(r["seconds"] for r in runs)

    def each(runs: list[dict]) -> str:
        return ", ".join(f"{r['seconds']:.2f}" for r in runs)

    full_s, sub_s, peer_s = med(full), med(subset), med(peer)
    full_gb = max(r["peak_gb"] for r in full)
    print(f"rows: {rows}")
    print(
        f"ours, full catalogue ({full[0]['rows']:,} referrals): median {full_s:.2f} s "
        f"({each(full)}); peak RSS {full_gb:.2f} GB "
        f"(targets: {TARGET_SECONDS:g} s, {TARGET_GB:g} GB, 2 cores)"
    )
    print(
        f"ours, {len(SUBSET)} history signals: median {sub_s:.2f} s ({each(subset)}); "
        f"peak RSS {max(r['peak_gb'] for r in subset):.2f} GB"
    )
    print(
        f"peer, DuckDB SQL window queries, same {len(SUBSET)} signals (threads=2): "
        f"median {peer_s:.2f} s ({each(peer)}); peak RSS {max(r['peak_gb'] for r in peer):.2f} GB"
    )
    print(
        f"ratio DuckDB/ours, same signals: {peer_s / sub_s:.2f} "
        f"(values equal on all {len(SUBSET)} signals for every referral)"
    )
    ok = full_s <= TARGET_SECONDS and full_gb <= TARGET_GB
    print("within target" if ok else "OUTSIDE TARGET")


if __name__ == "__main__":
    main()
