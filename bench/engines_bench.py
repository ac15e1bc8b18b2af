"""Benchmark: one catalogue, two engines: the numpy builder vs the catalogue compiled to SQL.

Synthesises a world of N referrals, writes its extract (not timed), then runs each engine on
the whole catalogue in a fresh process (so peak RSS, ``ru_maxrss``, is that run's alone):

* numpy: ``features.batch.build_features`` on the tables read with ``pandas.read_parquet``
  (reading not timed, but it counts towards the peak);
* duckdb: ``features.sql.build_features`` on the extract directory, ``threads=2``: DuckDB
  reads the Parquet files inside the timed query (nothing is loaded first), so its time
  includes the reading that numpy's does not.

Medians over the repeats; the two runs of a repeat are interleaved so machine noise hits them
alike. The engines' values must be equal for every signal and referral (1e-9 on
``days_since_last_referral``), or the script fails.

    .venv/bin/python bench/engines_bench.py [--referrals 100000] [--repeats 3] [--delays]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TABLES = ("children", "referrals", "events", "decisions")


def _peak_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def child_run(engine: str, directory: Path, out: str) -> None:
    """One measured run in this (fresh) process; prints JSON, writes values if ``out``."""
    import pandas as pd

    if engine == "duckdb":
        from features.sql import build_features

        start = time.perf_counter()
        result = build_features(directory, engine="duckdb", threads=2)
        seconds = time.perf_counter() - start
    else:
        from features.batch import build_features as numpy_features

        frames = {t: pd.read_parquet(directory / f"{t}.parquet") for t in TABLES}
        people = {
            key: pd.read_parquet(directory / f"{table}.parquet")
            for key, table in (("persons", "persons"), ("memberships", "household_memberships"))
            if (directory / f"{table}.parquet").exists()
        }
        start = time.perf_counter()
        result = numpy_features(*(frames[t] for t in TABLES), **people)
        seconds = time.perf_counter() - start
    peak = _peak_gb()
    if out:
        result.to_parquet(out)
    print(json.dumps({"seconds": seconds, "peak_gb": peak, "rows": len(result)}))


def measure(engine: str, directory: Path, out: str = "") -> dict[str, float]:
    """Run one measurement in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(directory), out],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(f"{engine} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def compare(numpy_path: Path, duckdb_path: Path) -> int:
    """Fail loudly unless the engines agree on every signal and referral; the signal count."""
    import pandas as pd

    ours, sql = pd.read_parquet(numpy_path), pd.read_parquet(duckdb_path)
    assert list(sql.index) == list(ours.index), "the engines' referrals differ"
    assert list(sql.columns) == list(ours.columns), "the engines' signals differ"
    bad = []
    for name in ours.columns:
        a, b = ours[name].to_numpy(float), sql[name].to_numpy(float)
        tolerance = 1e-9 if name == "days_since_last_referral" else 0.0
        same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= tolerance)
        if not same.all():
            bad.append(f"{name}: {int((~same).sum())} referrals differ")
    if bad:
        raise AssertionError("DuckDB and numpy disagree:\n  " + "\n  ".join(bad))
    return len(ours.columns)


def main() -> None:
    """Run the benchmark and print the figures."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_run(sys.argv[2], Path(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--delays", action="store_true", help="give the events sharing delays (recorded_at)"
    )
    args = parser.parse_args()

    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "extract"
        world = generate_world(WorldParams(n_referrals=args.referrals))
        write_extract(world, directory)
        rows = dict(world.manifest["rows"])
        del world
        gc.collect()
        if args.delays:  # the features bench's delays, in a process of its own
            features_bench = Path(__file__).with_name("features_bench.py")
            subprocess.run(
                [sys.executable, features_bench, "--add-delays", str(directory)], check=True
            )
        runs: dict[str, list[dict[str, float]]] = {"numpy": [], "duckdb": []}
        outs = {engine: Path(tmp) / f"{engine}.parquet" for engine in runs}
        for i in range(args.repeats):
            for engine, results in runs.items():
                results.append(measure(engine, directory, str(outs[engine]) if i == 0 else ""))
        n_signals = compare(outs["numpy"], outs["duckdb"])

    def med(engine: str) -> float:
        return statistics.median(r["seconds"] for r in runs[engine])

    def each(engine: str) -> str:
        return ", ".join(f"{r['seconds']:.2f}" for r in runs[engine])

    def peak(engine: str) -> float:
        return max(r["peak_gb"] for r in runs[engine])

    print(f"rows: {rows}")
    for engine in runs:
        print(
            f"{engine}: {n_signals} signals for {int(runs[engine][0]['rows']):,} referrals, "
            f"median {med(engine):.2f} s ({each(engine)}); peak RSS {peak(engine):.2f} GB"
        )
    print(
        f"ratio duckdb/numpy: time {med('duckdb') / med('numpy'):.2f}, "
        f"peak RSS {peak('duckdb') / peak('numpy'):.2f} "
        f"(values equal on all {n_signals} signals for every referral)"
    )


if __name__ == "__main__":
    main()
