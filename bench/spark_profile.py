"""Where a Spark features build spends its CPU: JIT compiling, tasks, the driver, GC.

Builds the compiled catalogue on ``local[2]`` for an extract and writes it (as
``triage features build --engine spark`` does), then reads the CPU seconds of each of the
JVM's threads from ``/proc`` (Linux) before stopping the session, grouped by thread name:
``C1/C2 CompilerThread`` (HotSpot's JIT), ``Executor task launch worker`` (Spark's tasks),
``Thread-N`` (py4j: parsing, analysing and planning the query on the driver), GC threads.
Threads that ended before the end are not counted.

    .venv/bin/python bench/spark_profile.py EXTRACT [--java-options '-XX:TieredStopAtLevel=1']
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

GROUPS = (
    ("JIT compiler", r"^C[12] CompilerThre"),
    ("Spark tasks", r"^Executor task"),
    ("driver (py4j)", r"^Thread-\d+"),
    ("GC", r"^(GC Thread|G1 |VM Thread)"),
)


def thread_cpu(pid: int) -> Counter[str]:
    """CPU seconds (user + system) of a process's live threads, grouped as ``GROUPS``."""
    tick, seconds = os.sysconf("SC_CLK_TCK"), Counter[str]()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        group = next((g for g, pattern in GROUPS if re.match(pattern, name)), "other")
        seconds[group] += (int(fields[11]) + int(fields[12])) / tick
    return seconds


def main() -> None:
    """Build, write, and print the wall time of each phase and the JVM's CPU by thread group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extract")
    parser.add_argument("--java-options", default="", help="the local JVM's extra options")
    args = parser.parse_args()
    if args.java_options:
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            f"--driver-java-options '{args.java_options}' pyspark-shell"
        )
    from features.sql.spark import spark_features, spark_session

    start = time.perf_counter()
    spark = spark_session("local[2]", "triage-profile")
    started = time.perf_counter()
    frame = spark_features(spark, args.extract)
    planned = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        frame.write.mode("overwrite").parquet(out)
    written = time.perf_counter()
    jvm = next(p for p in psutil.Process().children(recursive=True) if "java" in p.name())
    cpu = thread_cpu(jvm.pid)
    times = jvm.cpu_times()
    spark.stop()
    print(
        f"session {started - start:.1f} s, views and analysis {planned - started:.1f} s, "
        f"query and write {written - planned:.1f} s (wall)"
    )
    print(f"JVM CPU {times.user + times.system:.1f} s, of which:")
    for group, seconds in cpu.most_common():
        print(f"  {group}: {seconds:.1f} s")


if __name__ == "__main__":
    main()
