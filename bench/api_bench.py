"""Benchmark: the service API over HTTP on SQLite, against `mlflow models serve` as the peer.

Builds a synthetic world (about ``--open`` referrals still open), loads it into a fresh SQLite
store, trains and registers a champion into a temporary MLflow store (not timed), then starts
a real ``triage serve`` process (``--workers``, default 2) and waits until the start-up
backlog is scored. It measures:

1. ``GET /v1/queue`` with that many open referrals: p95 of the first page and of a deep
   cursor page (one client, then 8 concurrent clients);
2. ``POST /v1/referrals`` at concurrency 8 for ``--duration`` seconds: distinct valid
   referrals about existing children (so the history queries do real work): requests/s,
   p50 / p99 latency and the share of 201 ``scored`` replies;
3. the peer in the same run: ``mlflow models serve -m models:/<name>/<version> --env-manager
   local -w <workers>`` on the same champion with as many workers, bare ``/invocations`` with a
   one-row feature frame (no persistence, no reasons), same concurrency and load generator;
   ratios ours / peer. Both servers stay up and the loads alternate, ours then the peer,
   ``--repeats`` times (default 3); the verdicts use the medians, since the machine is shared
   and its speed drifts from minute to minute.

The POST loads come from ``wrk`` (``--load-generator wrk``, the default; ``apt-get install
wrk``): one C thread with eight keep-alive connections in a closed loop, each request a new
body (``bench/wrk_load.lua``), about 0.1 ms of CPU per request. ``--load-generator httpx`` uses
asyncio + one ``httpx.AsyncClient`` in this process instead, as earlier runs did (about 2 ms of
CPU per request, taken from the same two cores as the server). The GET loads always use httpx;
its ceiling is measured on ``/v1/health``. Both share the machine's cores with the server.

    .venv/bin/python bench/api_bench.py [--referrals 100000] [--open 10000] [--duration 20]
        [--serial-duration 5] [--queue-calls 300] [--workers 2] [--repeats 3]
        [--load-generator wrk] [--keep]

With ``--workers 2`` both servers run two workers: ours each on its own ``SO_REUSEPORT``
socket (``serving.supervisor``), so the kernel spreads the eight connections over both by a hash;
mlflow's (uvicorn's) on one shared socket, as it ships.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MODEL_NAME = "referral-triage"
CONCURRENCY = 8
TARGET_RPS = 300
TARGET_P99_MS = 50
TARGET_QUEUE_P95_MS = 100
QUEUE_PAGE = 50

try:
    import psutil
except ImportError:  # the bench extra has it; without it the CPU shares are not printed
    psutil = None


def verdict(ok: bool) -> str:
    """The words the benches print."""
    return "within target" if ok else "OUTSIDE TARGET"


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- setup (not timed) ----------------------------------------------------------------------


@dataclass
class Setup:
    """What the servers need: the store, the registry, the champion and the request material."""

    db_url: str
    db_path: Path
    mlflow_uri: str
    version: str
    world: object
    feature_columns: list[str]
    feature_rows: np.ndarray


def build(tmp: Path, *, referrals: int, open_target: int, years: int = 7) -> Setup:
    """World → extract → SQLite store → champion registered in a temp MLflow sqlite store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    from models.dataset import as_matrix
    from models.tracking import log_and_register
    from models.train import TrainConfig, train
    from triage.store.loader import load_extract
    from triage.store.migrate import upgrade
    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    per_day = referrals / (365.25 * years)
    open_days = open_target / per_day
    start = time.perf_counter()
    for _ in range(3):  # referrals are not spread evenly: rescale until enough stay open
        world = generate_world(WorldParams(n_referrals=referrals, years=years, open_days=open_days))
        still_open = int(
            (~world.referrals["referral_id"].isin(world.decisions["referral_id"])).sum()
        )
        if still_open >= open_target:
            break
        open_days *= open_target / max(1, still_open) * 1.01
    extract = tmp / "extract"
    write_extract(world, extract)
    db_path = tmp / "triage.db"
    db_url = f"sqlite:///{db_path}"
    upgrade(db_url)
    load_extract(extract, url=db_url, progress=False)
    print(f"setup: world of {len(world.referrals):,} referrals (open_days {open_days:.0f}) "
          f"loaded into SQLite in {time.perf_counter() - start:.0f} s")  # fmt: skip

    start = time.perf_counter()
    mlflow_uri = f"sqlite:///{tmp / 'mlflow' / 'mlflow.db'}"
    config = TrainConfig(scorecard_bootstraps=5, challenger_bootstraps=2, evaluation_bootstraps=20)
    result = train(extract, config)
    registration = log_and_register(
        result, tracking_uri=mlflow_uri, model_name=MODEL_NAME, alias="champion"
    )
    note = ""
    if not registration.promoted:
        # The bench needs a champion to score with; the gates are not what is measured here.
        from mlflow import MlflowClient

        MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", registration.version)
        note = " (gates failed; @champion set by the bench anyway)"
    features = result.data.features
    print(f"setup: trained the {result.chosen} and registered {MODEL_NAME}/"
          f"{registration.version}{note} in {time.perf_counter() - start:.0f} s")  # fmt: skip
    return Setup(
        db_url=db_url,
        db_path=db_path,
        mlflow_uri=mlflow_uri,
        version=registration.version,
        world=world,
        feature_columns=list(features.columns),
        feature_rows=as_matrix(features),
    )


def referral_bodies(world, run: str, seed: int = 0) -> Iterator[bytes]:
    """Endless distinct valid intake bodies about existing children, mirroring real referrals.

    With ``run="@ID@"`` each body's ``source_referral_id`` is the placeholder ``@ID@``, which
    the wrk script replaces by a fresh id per request.
    """
    rng = random.Random(seed)
    children = world.children.set_index("child_id")
    refs = world.referrals
    referred = refs[refs["child_id"].isin(children.index)]
    rows = referred.sample(min(len(referred), 20_000), random_state=seed).to_dict("records")
    now = datetime.now(UTC).replace(microsecond=0)
    i = 0
    while True:
        r = rows[i % len(rows)]
        c = children.loc[r["child_id"]]
        received = now - timedelta(minutes=rng.randint(1, 600))
        sites = (
            [s for s in (r["injury_sites"] or "").split(";") if s]
            if isinstance(r["injury_sites"], str)
            else []
        )
        reported = bool(r["injury_reported"]) or bool(sites)
        referrer = {"type": r["referrer_type"]}
        for field in ("relationship", "referrer_id"):
            value = r[field if field == "referrer_id" else "referrer_relationship"]
            if isinstance(value, str) and value:  # missing values come back as NaN
                referrer[field] = value
        body = {
            "source_system": "bench-feed",
            "source_referral_id": run if run == "@ID@" else f"B-{run}-{i}",
            "received_at": received.isoformat().replace("+00:00", "Z"),
            "child": {
                "child_id": r["child_id"],
                "household_id": c["household_id"],
                "given_name": c["given_name"],
                "family_name": c["family_name"],
                "date_of_birth": str(c["date_of_birth"]),
                "sex": c["sex"],
                "ethnicity": c["ethnicity"],
                "disability": bool(c["disability"]),
                "deprivation_decile": int(c["deprivation_decile"]),
            },
            "referrer": referrer,
            "concerns": (isinstance(r["concerns"], str)
                         and [s for s in r["concerns"].split(";") if s]) or ["other"],
            "injury": {"reported": reported, "sites": sites,
                       "photographed": bool(r["injury_photographed"]) and reported},
            "narrative": "Synthetic benchmark referral.",
        }  # fmt: skip
        yield json.dumps(body).encode()
        i += 1


def invocation_bodies(columns: list[str], rows: np.ndarray, seed: int = 0) -> Iterator[bytes]:
    """Endless one-row ``dataframe_split`` bodies from the world's feature rows."""
    order = np.random.default_rng(seed).permutation(len(rows))
    i = 0
    while True:
        row = rows[order[i % len(order)]]
        data = [None if math.isnan(v) else float(v) for v in row]
        yield json.dumps({"dataframe_split": {"columns": columns, "data": [data]}}).encode()
        i += 1


# --- servers --------------------------------------------------------------------------------


class Server:
    """A server process started for the bench, stopped by its own pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.handle = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=self.handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, url: str, ok: Callable[[httpx.Response], bool], timeout: float) -> None:
        """Poll ``url`` until ``ok``; fail with the log's tail if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if ok(httpx.get(url, timeout=2)):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not become ready at {url}:\n{tail}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its children so far (0 without psutil)."""
        if psutil is None:
            return 0.0
        try:
            procs = [psutil.Process(self.process.pid)]
            procs += procs[0].children(recursive=True)
            total = 0.0
            for p in procs:
                t = p.cpu_times()
                total += t.user + t.system
            return total
        except psutil.Error:
            return 0.0

    def wait_workers_ready(self, count: int, timeout: float = 120) -> int:
        """Wait until the supervisor has logged ``count`` workers ready; how many it has."""
        # A connection opened while a worker is not ready yet stays with the others.
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace")
            ready = len(set(re.findall(r'"message": "worker (\d+) ready', text)))
            if ready >= count or time.monotonic() > deadline:
                return ready
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the process group this bench started, then SIGKILL if needed."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.handle.close()


def server_env(setup: Setup) -> dict[str, str]:
    """The environment both servers run with."""
    env = dict(os.environ)
    env.update(
        TRIAGE_DATABASE_URL=setup.db_url,
        TRIAGE_MLFLOW_TRACKING_URI=setup.mlflow_uri,
        TRIAGE_VAR_DIR=str(setup.db_path.parent),
        MLFLOW_TRACKING_URI=setup.mlflow_uri,
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK="true",
        # The bench is one key and one person sending far more than a front door does; the
        # limiter still counts every request (its cost is measured), it just never refuses.
        TRIAGE_RATE_LIMIT_KEY="100000000/minute",
        TRIAGE_RATE_LIMIT_USER="100000000/minute",
        # mlflow models serve execs a bare `uvicorn`: it must find the venv's.
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def credentials(setup: Setup) -> tuple[dict[str, str], dict[str, str]]:
    """Bearer headers for a practitioner (the queue) and the bench feed's API key (intake)."""
    from triage.accounts import create_api_key, create_user
    from triage.security import issue_user_token
    from triage.settings import Settings
    from triage.store import make_engine, session_factory

    settings = Settings(database_url=setup.db_url, var_dir=setup.db_path.parent)
    engine = make_engine(setup.db_url)
    try:
        with session_factory(engine)() as session:
            user = create_user(
                session, username="bench-practitioner", password="bench password long",
                roles=["practitioner"], actor="bench",
            )  # fmt: skip
            key = create_api_key(session, name="bench", source_system="bench-feed", actor="bench")
            session.commit()
    finally:
        engine.dispose()
    token = issue_user_token(settings.get_secret_key(), user_id=user.user_id)
    return {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {key.key}"}


def wait_for_backlog(
    db_path: Path, version: str, timeout: float, server: Server
) -> tuple[int, int, float]:
    """Wait until every queue entry is scored by the champion; (queued, still unscored, secs)."""
    start = time.monotonic()
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        while True:
            if server.process.poll() is not None:
                tail = server.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{server.name} stopped while scoring its backlog:\n{tail}")
            queued, pending = db.execute(
                "SELECT count(*), sum(model_version IS NULL OR model_version != ?)"
                " FROM queue_entries",
                (f"{MODEL_NAME}/{version}",),
            ).fetchone()
            elapsed = time.monotonic() - start
            if not pending or elapsed > timeout:
                return queued, pending or 0, elapsed
            time.sleep(1)


# --- load generator -------------------------------------------------------------------------


@dataclass
class Load:
    """One measured load: requests, wall time, latency percentiles (ms), statuses, CPU."""

    requests: int
    elapsed: float
    p50: float
    p95: float
    p99: float
    statuses: dict[int, int]
    successes: int
    client_cpu: float
    server_cpu: float
    other_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    @property
    def success_share(self) -> float:
        return self.successes / max(1, self.requests)


async def _drive(
    method: str,
    url: str,
    bodies: Iterator[bytes] | None,
    *,
    concurrency: int,
    duration: float | None,
    count: int | None,
    warmup: float,
    success: Callable[[httpx.Response], bool],
    server: Server | None,
    auth: dict[str, str] | None = None,
) -> Load:
    """Closed-loop load: ``concurrency`` workers, each sends its next request when one returns."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json", **(auth or {})}
    latencies: list[float] = []
    statuses: list[int] = []
    ok = 0
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:

        async def one(record: bool) -> None:
            nonlocal ok
            content = next(bodies) if bodies is not None else None
            start = time.perf_counter()
            response = await client.request(method, url, content=content)
            took = time.perf_counter() - start
            if record:
                latencies.append(took)
                statuses.append(response.status_code)
                ok += success(response)

        async def worker(until: float, record: bool) -> None:
            while time.perf_counter() < until and (
                count is None or not record or len(latencies) < count
            ):
                await one(record)

        if warmup:
            until = time.perf_counter() + warmup
            await asyncio.gather(*(worker(until, False) for _ in range(concurrency)))
        cpu0, srv0 = time.process_time(), server.cpu_seconds() if server else 0.0
        busy0 = busy_seconds()
        start = time.perf_counter()
        until = start + (duration if duration is not None else 1e9)
        await asyncio.gather(*(worker(until, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - cpu0
        server_cpu = (server.cpu_seconds() - srv0) if server else 0.0
        other_cpu = max(0.0, busy_seconds() - busy0 - client_cpu - server_cpu)
    p50, p95, p99 = np.percentile(np.array(latencies) * 1e3, [50, 95, 99])
    codes = {c: statuses.count(c) for c in sorted(set(statuses))}
    return Load(
        len(latencies), elapsed, float(p50), float(p95), float(p99), codes, ok, client_cpu,
        server_cpu, other_cpu,
    )  # fmt: skip


WRK_SCRIPT = Path(__file__).with_name("wrk_load.lua")


def drive_wrk(
    url: str,
    bodies: Iterator[bytes],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    ok_status: int,
    ok_mark: str | None,
    server: Server,
    work_dir: Path,
    auth: dict[str, str] | None = None,
    distinct: int = 50_000,
) -> Load:
    """Closed-loop POST load from ``wrk`` (one thread, ``concurrency`` keep-alive connections).

    Bodies come from ``bodies`` (written to a file first, ``distinct`` of them, cycled); an
    ``@ID@`` in a body becomes a fresh id per request, so every intake is a new referral.
    """
    path = work_dir / f"bodies-{time.monotonic_ns()}.jsonl"
    with open(path, "wb") as out:
        for _ in range(distinct):
            out.write(next(bodies).replace(b"\n", b" ") + b"\n")
    env = dict(os.environ)
    env.update(
        BODIES=str(path), OK_STATUS=str(ok_status), OK_MARK=ok_mark or "",
        AUTHORIZATION=(auth or {}).get("Authorization", ""),
    )  # fmt: skip
    if not ok_mark:
        env.pop("OK_MARK")

    def run(seconds: float, run_id: str) -> str:
        # wrk takes whole seconds only.
        argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
                "--timeout", "30s", "-s", str(WRK_SCRIPT), url]  # fmt: skip
        done = subprocess.run(
            argv, env=env | {"RUN_ID": run_id}, capture_output=True, text=True, check=True
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
        return line

    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    if warmup:
        run(max(1.0, warmup), f"warm-{tag}")
    children0 = _children_cpu()
    srv0, busy0 = server.cpu_seconds(), busy_seconds()
    line = run(duration, f"load-{tag}")
    client_cpu = _children_cpu() - children0
    server_cpu = server.cpu_seconds() - srv0
    other_cpu = max(0.0, busy_seconds() - busy0 - client_cpu - server_cpu)
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    statuses = {
        int(code): int(n)
        for code, n in (item.split(":") for item in fields["statuses"].split(",") if item)
    }
    errors = int(fields["socket_errors"])
    if errors:
        statuses[0] = errors  # 0: connection errors and timeouts, no HTTP status
    return Load(
        requests=int(fields["requests"]),
        elapsed=int(fields["duration_us"]) / 1e6,
        p50=int(fields["p50_us"]) / 1e3,
        p95=int(fields["p95_us"]) / 1e3,
        p99=int(fields["p99_us"]) / 1e3,
        statuses=dict(sorted(statuses.items())),
        successes=int(fields["ok"]),
        client_cpu=client_cpu,
        server_cpu=server_cpu,
        other_cpu=other_cpu,
    )


def _children_cpu() -> float:
    """User + system CPU of this process's finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (0 without psutil)."""
    if psutil is None:
        return 0.0
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def drive(method: str, url: str, bodies: Iterator[bytes] | None = None, **kwargs) -> Load:
    """Run ``_drive`` on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(_drive(method, url, bodies, **kwargs))
    except ImportError:
        return asyncio.run(_drive(method, url, bodies, **kwargs))


def cpu_note(load: Load) -> str:
    """Where the CPU went during a load, as shares of the 2 cores' capacity."""
    if psutil is None:
        return ""
    cores = os.cpu_count() or 2
    share = lambda seconds: f"{seconds / load.elapsed / cores:.0%}"  # noqa: E731
    return (f"; CPU of the {cores} cores: server {share(load.server_cpu)}, load generator "
            f"{share(load.client_cpu)}, other processes {share(load.other_cpu)}")  # fmt: skip


# --- the measurements -----------------------------------------------------------------------


def queue_bench(base: str, queued: int, calls: int, auth: dict[str, str]) -> bool:
    """p95 of the first page and of a deep cursor page; sequential, then at concurrency 8."""
    first = httpx.get(f"{base}/v1/queue", params={"limit": QUEUE_PAGE}, timeout=30, headers=auth)
    first.raise_for_status()
    # Walk the cursors to the middle of the queue for a deep page.
    pages = max(1, queued // QUEUE_PAGE // 2)
    cursor = first.json()["next_cursor"]
    walked = 1
    with httpx.Client(timeout=30, headers=auth) as client:
        while walked < pages and cursor:
            page = client.get(f"{base}/v1/queue", params={"limit": QUEUE_PAGE, "cursor": cursor})
            page.raise_for_status()
            cursor = page.json()["next_cursor"]
            walked += 1
    assert cursor, "the queue ended before the deep page"
    queue = f"{base}/v1/queue"
    urls = {
        "first page": str(httpx.URL(queue, params={"limit": QUEUE_PAGE})),
        f"deep page (page {walked + 1}, cursor)": str(
            httpx.URL(queue, params={"limit": QUEUE_PAGE, "cursor": cursor})
        ),
    }
    met = True
    for label, url in urls.items():
        for concurrency in (1, CONCURRENCY):
            load = drive(
                "GET", url, concurrency=concurrency, duration=None, count=calls, warmup=1.0,
                success=lambda r: r.status_code == 200, server=None, auth=auth,
            )  # fmt: skip
            p95 = load.p95
            if concurrency == 1:
                met &= p95 <= TARGET_QUEUE_P95_MS
            print(
                f"GET /v1/queue {label}, {QUEUE_PAGE} items, {queued:,} open referrals, "
                f"concurrency {concurrency}: p50 {load.p50:.1f} ms, p95 {p95:.1f} ms, "
                f"{load.rps:,.0f} requests/s, {load.success_share:.0%} 200; "
                f"{verdict(p95 <= TARGET_QUEUE_P95_MS)} (target p95 ≤ {TARGET_QUEUE_P95_MS} ms"
                + (", judged at concurrency 1)" if concurrency == 1 else ", not judged)")
            )  # fmt: skip
    return met


def report_post(label: str, load: Load) -> None:
    """One line of throughput and latency."""
    print(f"{label}: {load.requests:,} requests in {load.elapsed:.1f} s at concurrency "
          f"{CONCURRENCY}: {load.rps:,.0f} requests/s, p50 {load.p50:.1f} ms, "
          f"p99 {load.p99:.1f} ms; statuses {load.statuses}{cpu_note(load)}")  # fmt: skip


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--open", type=int, default=10_000, help="open referrals in the queue")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per POST load")
    parser.add_argument("--queue-calls", type=int, default=300)
    parser.add_argument(
        "--serial-duration", type=float, default=5.0, help="seconds of POST at concurrency 1"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes of both servers (2 on 2 cores)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="POST loads of each server, alternating (median)"
    )
    parser.add_argument(
        "--load-generator",
        choices=("wrk", "httpx"),
        default="wrk",
        help="for the POST loads: wrk (C, apt-get install wrk) or httpx in this process",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed)")
    args = parser.parse_args()
    if args.load_generator == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk, or --load-generator httpx")

    tmp = Path(tempfile.mkdtemp(prefix="api-bench-"))
    try:
        setup = build(tmp, referrals=args.referrals, open_target=args.open)
        env = server_env(setup)
        if args.load_generator == "wrk":
            print(f"load generator for the POST loads: wrk (one thread, {CONCURRENCY} keep-alive "
                  "connections, closed loop, bench/wrk_load.lua); GET loads: asyncio + httpx; "
                  f"both share the {os.cpu_count()} cores with the server")  # fmt: skip
        else:
            print(f"load generator: asyncio + httpx.AsyncClient (keep-alive, {CONCURRENCY} "
                  f"connections) in this process, sharing the {os.cpu_count()} cores with the "
                  "server")  # fmt: skip

        def post_load(
            url: str, bodies: Iterator[bytes], *, server: Server, concurrency: int,
            duration: float, warmup: float, ok_status: int, ok_mark: bytes | None,
            auth: dict[str, str] | None = None,
        ) -> Load:  # fmt: skip
            """A POST load from the chosen generator."""
            if args.load_generator == "wrk":
                return drive_wrk(
                    url, bodies, concurrency=concurrency, duration=duration, warmup=warmup,
                    ok_status=ok_status, ok_mark=ok_mark.decode() if ok_mark else None,
                    server=server, work_dir=tmp, auth=auth,
                )  # fmt: skip
            return drive(
                "POST", url, bodies, concurrency=concurrency, duration=duration, count=None,
                warmup=warmup, server=server, auth=auth,
                success=lambda r: r.status_code == ok_status
                and (ok_mark is None or ok_mark in r.content),
            )  # fmt: skip

        # Ours, a real `triage serve`, and the peer, `mlflow models serve` on the same champion,
        # run side by side: the intake loads alternate between them, so that each pair of runs
        # meets the same machine (an idle server takes no CPU).
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        workers = str(args.workers)
        ours = Server(
            "triage serve",
            [str(VENV_BIN / "triage"), "serve", "--port", str(port), "--workers", workers],
            env, tmp / "triage-serve.log",
        )  # fmt: skip
        peer_server: Server | None = None
        try:
            ours.wait_ready(f"{base}/v1/health", lambda r: r.json()["model_loaded"], 300)
            queued, pending, took = wait_for_backlog(setup.db_path, setup.version, 1800, ours)
            print(f"triage serve ({workers} workers): start-up backlog of {queued:,} queued "
                  f"referrals scored in {took:.0f} s ({pending:,} left)")  # fmt: skip
            ready = ours.wait_workers_ready(args.workers) if args.workers > 1 else 1
            if ready < args.workers:
                print(f"warning: only {ready} of {args.workers} workers are ready")
            time.sleep(5)  # each worker finishes the backlog batch it had in hand
            practitioner, referral_system = credentials(setup)
            queue_met = queue_bench(base, queued, args.queue_calls, practitioner)

            ceiling = drive(
                "GET", f"{base}/v1/health", concurrency=CONCURRENCY, duration=5, count=None,
                warmup=1, success=lambda r: r.status_code == 200, server=ours,
            )  # fmt: skip
            report_post("load generator ceiling, GET /v1/health (trivial route)", ceiling)

            run = "@ID@" if args.load_generator == "wrk" else str(port)
            bodies = referral_bodies(setup.world, run=run)
            scored = b'"status":"scored"'
            serial = post_load(
                f"{base}/v1/referrals", bodies, concurrency=1, duration=args.serial_duration,
                warmup=1, ok_status=201, ok_mark=scored, server=ours, auth=referral_system,
            )  # fmt: skip
            print(f"ours at concurrency 1 (no contention for the SQLite write lock): "
                  f"{serial.rps:,.0f} requests/s, p50 {serial.p50:.1f} ms, "
                  f"p99 {serial.p99:.1f} ms, {serial.success_share:.0%} 201 scored")  # fmt: skip

            peer_port = free_port()
            peer_base = f"http://127.0.0.1:{peer_port}"
            peer_server = Server(
                "mlflow models serve",
                [str(VENV_BIN / "mlflow"), "models", "serve", "-m",
                 f"models:/{MODEL_NAME}/{setup.version}", "--env-manager", "local", "-w",
                 workers, "-h", "127.0.0.1", "-p", str(peer_port)],
                env, tmp / "mlflow-serve.log",
            )  # fmt: skip
            peer_server.wait_ready(f"{peer_base}/ping", lambda r: r.status_code == 200, 300)
            peer_bodies = invocation_bodies(setup.feature_columns, setup.feature_rows)
            check = httpx.post(
                f"{peer_base}/invocations", content=next(peer_bodies),
                headers={"Content-Type": "application/json"}, timeout=30,
            )  # fmt: skip
            if check.status_code != 200:
                raise RuntimeError(f"peer refused a one-row frame: {check.text[:500]}")

            pairs: list[tuple[Load, Load]] = []
            for repeat in range(1, args.repeats + 1):
                intake = post_load(
                    f"{base}/v1/referrals", bodies, concurrency=CONCURRENCY,
                    duration=args.duration, warmup=2, ok_status=201, ok_mark=scored,
                    server=ours, auth=referral_system,
                )  # fmt: skip
                peer = post_load(
                    f"{peer_base}/invocations", peer_bodies, concurrency=CONCURRENCY,
                    duration=args.duration, warmup=2, ok_status=200, ok_mark=None,
                    server=peer_server,
                )  # fmt: skip
                pairs.append((intake, peer))
                report_post(f"run {repeat}: ours ({workers} workers), POST /v1/referrals "
                            "(store + audit + features + score + reasons + queue)",
                            intake)  # fmt: skip
                print(f"run {repeat}: ours: {intake.success_share:.1%} of replies were 201 scored")
                report_post(f"run {repeat}: peer ({workers} workers), mlflow models serve "
                            "/invocations (one-row frame, no persistence, no reasons)",
                            peer)  # fmt: skip
                print(f"run {repeat}: ratio ours / peer: throughput {intake.rps / peer.rps:.2f}x, "
                      f"p99 {intake.p99 / peer.p99:.2f}x")  # fmt: skip
        finally:
            ours.stop()
            if peer_server is not None:
                peer_server.stop()

        median = lambda values: float(np.median(values))  # noqa: E731
        rps = median([ours_load.rps for ours_load, _ in pairs])
        p50 = median([ours_load.p50 for ours_load, _ in pairs])
        p99 = median([ours_load.p99 for ours_load, _ in pairs])
        peer_rps = median([peer_load.rps for _, peer_load in pairs])
        peer_p99 = median([peer_load.p99 for _, peer_load in pairs])
        print(f"median of {len(pairs)} runs: ours {rps:,.0f} requests/s, p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms; peer {peer_rps:,.0f} requests/s, p99 {peer_p99:.1f} ms; "
              f"ratio ours / peer (median of the pairs): throughput "
              f"{median([o.rps / q.rps for o, q in pairs]):.2f}x, p99 "
              f"{median([o.p99 / q.p99 for o, q in pairs]):.2f}x")  # fmt: skip
        rps_ok, p99_ok = rps >= TARGET_RPS, p99 <= TARGET_P99_MS
        print(f"POST /v1/referrals throughput (median): {verdict(rps_ok)} (target ≥ "
              f"{TARGET_RPS} requests/s); p99 (median): {verdict(p99_ok)} (target ≤ "
              f"{TARGET_P99_MS} ms)")  # fmt: skip
        print(f"GET /v1/queue p95, one client: {verdict(queue_met)} "
              f"(target ≤ {TARGET_QUEUE_P95_MS} ms)")  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
