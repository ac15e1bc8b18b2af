"""Wall time and peak memory of a command *with its children* (Spark's JVM is one).

``/usr/bin/time -v`` reports the largest single process it waited for, and PySpark's JVM is
started by the Python process, not waited for by ``time``; so this samples the summed RSS of
the command's whole process tree every 0.1 s (a peak between samples can be missed), and its
CPU seconds: on a shared machine these say more than the wall time does.

    .venv/bin/python bench/tree_time.py -- .venv/bin/triage features build W --engine spark ...
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import psutil


def sample(root: psutil.Process, cpu: dict[int, float]) -> int:
    """Summed resident memory of a process and its descendants, in bytes; each one's CPU
    seconds so far (user + system) recorded in ``cpu`` by pid."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
            times = proc.cpu_times()
            cpu[proc.pid] = times.user + times.system
        except psutil.Error:  # ended between listing and reading
            pass
    return total


def main(argv: list[str]) -> int:
    """Run ``argv`` (after ``--``), print its wall time, peak tree RSS and exit code."""
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv
    if not command:
        print("usage: tree_time.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    start = time.perf_counter()
    child = subprocess.Popen(command)
    root, peak, cpu = psutil.Process(child.pid), 0, dict[int, float]()
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, sample(root, cpu))
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    print(
        f"wall {seconds:.2f} s, CPU {sum(cpu.values()):.1f} s (tree, to the last sample), "
        f"peak tree RSS {peak / 1024**3:.2f} GB, exit {child.returncode}"
    )
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
