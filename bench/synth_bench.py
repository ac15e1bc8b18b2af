"""Benchmark: synthesise a world of N referrals (default 1,000,000) and write its extract.

Prints the median wall time and peak RSS over repeated runs, each in a fresh process, and
the ratio against a named peer run on the same machine in the same run: Faker called per
record and per field (name, date of birth, timestamp, a sentence), the way synthetic case
data is usually made, timed on a sample and scaled linearly to N rows.

    .venv/bin/python bench/synth_bench.py [--referrals 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = """
import json, resource, sys, tempfile, time
from pathlib import Path
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract
n = int(sys.argv[1])
start = time.perf_counter()
world = generate_world(WorldParams(n_referrals=n))
with tempfile.TemporaryDirectory() as out:
    write_extract(world, Path(out))
    elapsed = time.perf_counter() - start
rows = world.manifest["rows"]
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
print(json.dumps({"seconds": elapsed, "peak_gb": peak_gb, "rows": rows}))
"""


def run_world(n: int) -> dict:
    """One synthesis in a fresh interpreter, so peak RSS is this run's alone."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def faker_rows_per_second(sample: int = 20_000) -> float:
    """The peer: Faker per record and per field, as rows per second."""
    from faker import Faker

    fake = Faker("en_GB")
    fake.seed_instance(0)
    start = time.perf_counter()
    rows = [
        (
            fake.first_name(),
            fake.last_name(),
            fake.date_of_birth(maximum_age=17),
            fake.date_time_between("-7y", "now"),
            fake.sentence(nb_words=14),
        )
        for _ in range(sample)
    ]
    elapsed = time.perf_counter() - start
    assert len(rows) == sample
    return sample / elapsed


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    runs = [run_world(args.referrals) for _ in range(args.repeats)]
    seconds = statistics.median(r["seconds"] for r in runs)
    peak = max(r["peak_gb"] for r in runs)
    rows = runs[0]["rows"]
    peer_rate = faker_rows_per_second()
    peer_seconds = rows["referrals"] / peer_rate
    each = ", ".join(f"{r['seconds']:.1f}" for r in runs)
    print(f"rows: {rows}")
    print(
        f"synth + Parquet, {args.referrals:,} referrals: median {seconds:.1f} s over "
        f"{args.repeats} runs ({each}); "
        f"peak RSS {peak:.2f} GB (target: 60 s, 4 GB)"
    )
    print(
        f"peer, Faker per record and field: {peer_rate:,.0f} rows/s -> "
        f"{peer_seconds:.1f} s for {rows['referrals']:,} referral rows alone (scaled from 20,000)"
    )
    print(
        f"ratio: the peer needs {peer_seconds / seconds:.1f}x the time for the referral rows "
        f"alone, without events, decisions, outcomes or the world behind them"
    )
    ok = seconds <= 60 and peak <= 4
    print("within target" if ok else "OUTSIDE TARGET")


if __name__ == "__main__":
    main()
