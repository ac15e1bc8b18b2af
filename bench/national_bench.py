"""Benchmark: the batch pipeline at national size, engine by engine (issue 25, item 5).

Runs the real commands on an extract, each in a fresh process, and measures its wall time and
the peak of the whole process tree's resident memory (sampled every 0.2 s, so Spark's JVM and
Python workers count with the driver):

* features: ``triage features build EXTRACT --engine numpy|duckdb|spark``;
* scores: ``triage score --features F`` (numpy and DuckDB features, the champion in memory) or
  ``triage score --engine spark`` (features and scores on Spark);
* audit: ``triage audit --features F`` or ``triage audit --engine spark`` (the test period).

A step whose tree passes ``--guard-gb`` is stopped and reported as not fitting (the numpy
path reads the whole extract into memory, so at national size it is expected not to); a step
after a failed one on the same engine is skipped. Spark can run on a smaller extract
(``--spark-extract``): its figures are then also given per million referrals, with a linear
projection to the national extract and a cluster cost at ``--price-per-core-hour`` (an
assumption the reader can change: the projection assumes the work spreads evenly over cores
and grows linearly). On Spark, ``score`` and ``audit`` each build the features again (they
take no feature table), so Spark's total holds three builds where the others hold one.

    .venv/bin/python bench/national_bench.py --extract DIR [--engines duckdb,numpy,spark]
        [--spark-extract DIR] [--memory-limit 12GB] [--guard-gb 18] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq
from tree_time import sample  # bench/: the process tree's memory and CPU

BIN = Path(sys.executable).parent


@dataclass
class Step:
    """One measured command."""

    engine: str
    step: str
    referrals: int
    seconds: float
    cpu_seconds: float
    peak_gb: float
    status: str
    """ok, failed (exit code) or over the guard."""


def run(
    command: list[str], guard_gb: float, env: dict[str, str]
) -> tuple[float, float, float, str]:
    """Run a command; its wall time, CPU seconds and peak tree RSS (GB), and its status."""
    import psutil

    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    root, peak, cpu, over = psutil.Process(process.pid), 0, dict[int, float](), False
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, sample(root, cpu))
        if peak > guard_gb * 1024**3:
            over = True
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
            process.kill()
            process.wait()
            break
        time.sleep(0.2)
    reader.join()
    seconds = time.perf_counter() - start
    if over:
        status = f"stopped: over {guard_gb:g} GB"
    elif process.returncode:
        status = f"failed (exit {process.returncode})"
        print("".join(output)[-3000:], file=sys.stderr)
    else:
        status = "ok"
    return seconds, sum(cpu.values()), peak / 1024**3, status


def referrals_in(extract: Path) -> int:
    """Referrals in an extract (from its Parquet footer)."""
    return int(pq.ParquetFile(extract / "referrals.parquet").metadata.num_rows)


def commands(
    engine: str, extract: Path, work: Path, memory_limit: str
) -> list[tuple[str, list[str]]]:
    """The three steps of one engine, as command lines."""
    triage = str(BIN / "triage")
    features = work / f"features-{engine}.parquet"
    if engine == "spark":
        return [
            ("features", [triage, "features", "build", str(extract), "--engine", "spark",
                          "--out", str(features), "--master", "local[2]"]),
            ("scores", [triage, "score", "--engine", "spark", "--data", str(extract),
                        "--out", str(work / "scores-spark"), "--master", "local[2]"]),
            ("audit", [triage, "audit", "--engine", "spark", "--data", str(extract),
                       "--out", str(work / "audit-spark"), "--master", "local[2]"]),
        ]  # fmt: skip
    limit = ["--memory-limit", memory_limit] if engine == "duckdb" else []
    return [
        ("features", [triage, "features", "build", str(extract), "--engine", engine,
                      "--out", str(features), *limit]),
        ("scores", [triage, "score", "--features", str(features),
                    "--out", str(work / f"scores-{engine}.parquet")]),
        ("audit", [triage, "audit", "--features", str(features), "--data", str(extract),
                   "--out", str(work / f"audit-{engine}")]),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--extract", type=Path, required=True)
    parser.add_argument("--engines", default="duckdb,numpy,spark")
    parser.add_argument("--spark-extract", type=Path, help="a smaller extract for Spark")
    parser.add_argument("--memory-limit", default="12GB", help="DuckDB's memory limit")
    parser.add_argument("--guard-gb", type=float, default=18.0)
    parser.add_argument("--price-per-core-hour", type=float, default=0.05)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    national = referrals_in(args.extract)
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="national-bench-") as tmp:
        for engine in args.engines.split(","):
            smaller = engine == "spark" and args.spark_extract is not None
            extract = args.spark_extract if smaller else args.extract
            referrals = referrals_in(extract)
            work = Path(tmp) / engine
            work.mkdir()
            failed = False
            for step, command in commands(engine, extract, work, args.memory_limit):
                if failed:
                    steps.append(Step(engine, step, referrals, 0.0, 0.0, 0.0, "skipped"))
                    continue
                seconds, cpu, peak, status = run(command, args.guard_gb, env)
                steps.append(Step(engine, step, referrals, seconds, cpu, peak, status))
                print(
                    f"{engine:7s} {step:9s} {referrals:>10,} referrals  {seconds:8.1f} s  "
                    f"CPU {cpu:8.1f} s  {peak:6.2f} GB  {status}",
                    flush=True,
                )
                failed = status != "ok"
            shutil.rmtree(work, ignore_errors=True)
    print(summary(steps, national, args.price_per_core_hour))
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in steps], indent=2), encoding="utf-8")


def summary(steps: list[Step], national: int, price: float) -> str:
    """Totals per engine, ratios to the fastest complete engine, Spark's projection."""
    lines = [f"national extract: {national:,} referrals"]
    totals: dict[str, tuple[float, float, int]] = {}
    for engine in dict.fromkeys(s.engine for s in steps):
        mine = [s for s in steps if s.engine == engine]
        if all(s.status == "ok" for s in mine):
            totals[engine] = (
                sum(s.seconds for s in mine),
                max(s.peak_gb for s in mine),
                mine[0].referrals,
            )
        else:
            broke = next(s for s in mine if s.status != "ok")
            lines.append(f"{engine}: did not complete ({broke.step}: {broke.status})")
    per_million = {e: t / (n / 1e6) for e, (t, _, n) in totals.items()}
    best = min(per_million, key=per_million.__getitem__) if per_million else None
    for engine, (seconds, peak, referrals) in totals.items():
        ratio = per_million[engine] / per_million[best] if best else float("nan")
        lines.append(
            f"{engine}: features + scores + audit {seconds:.1f} s for {referrals:,} referrals "
            f"({per_million[engine]:.1f} s per million; {ratio:.2f}x {best}), peak {peak:.2f} GB"
        )
    if "spark" in totals:
        mine = [s for s in steps if s.engine == "spark"]
        seconds, _, referrals = totals["spark"]
        scale = national / referrals
        core_hours = sum(s.cpu_seconds for s in mine) / 3600 * scale
        lines.append(
            f"spark projection to {national:,} referrals (linear from {referrals:,} on "
            f"local[2], which assumes shuffles and sorts grow no faster than the rows; its "
            f"score and audit steps each build the features again): "
            f"{core_hours:.2f} core-hours of CPU; at ${price:.3f} per core-hour "
            f"${core_hours * price:.2f} a run; on 32 busy cores about "
            f"{core_hours / 32 * 60:.0f} minutes"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
