"""`triage serve --workers N`: connections handed out in turn, a dead worker replaced, a taken
port refused."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.app import create_app
from api.deps import run_intake
from cli import app as cli
from serving import supervisor as serving
from serving.supervisor import ServerOptions
from triage.settings import Settings, get_settings
from triage.store import QueueEntryRow, ScoreRow, make_engine
from triage.store.loader import load_extract
from triage.store.migrate import upgrade
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

T = TypeVar("T")
TRIAGE = Path(sys.executable).parent / "triage"
ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = ROOT / "scripts" / "reliability_server.py"
sys.path.insert(0, str(SERVER_SCRIPT.parent))
from pii_scan import LOG_DIR_ENV  # noqa: E402
from reliability_server import tiny_scorer  # noqa: E402


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def workers_of(supervisor: psutil.Process) -> list[psutil.Process]:
    """The supervisor's worker processes (spawned by multiprocessing)."""
    return [
        child
        for child in supervisor.children()
        if any("multiprocessing" in part for part in child.cmdline())
        and "resource_tracker" not in " ".join(child.cmdline())
    ]


def connections_per_worker(supervisor: psutil.Process, port: int) -> dict[int, int]:
    """Worker pid -> how many established connections to ``port`` it serves."""
    found = {}
    for worker in workers_of(supervisor):
        try:
            connections = worker.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found[worker.pid] = sum(
            c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port for c in connections
        )
    return found


def listens(process: psutil.Process, port: int) -> bool:
    """Whether ``process`` has a listening socket on ``port``."""
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in process.net_connections(kind="tcp")
    )


def serves_both(url: str, supervisor: psutil.Process, port: int) -> bool:
    """Whether two new keep-alive connections land on two workers (both are ready)."""
    clients = keep_alive_clients(url, 2)
    try:
        return sorted(connections_per_worker(supervisor, port).values()) == [1, 1]
    finally:
        for client in clients:
            client.close()


def keep_alive_clients(url: str, count: int) -> list[httpx.Client]:
    """``count`` clients, each holding one keep-alive connection that has had one reply."""
    clients = [httpx.Client(base_url=url, timeout=10.0) for _ in range(count)]
    for client in clients:
        assert client.get("/v1/health").status_code == 200
    return clients


def wait_for(condition: Callable[[], T], timeout: float = 60.0) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def healthy(url: str) -> bool:
    """The server answers its liveness route on a fresh connection."""
    try:
        return httpx.get(f"{url}/v1/health", timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """A migrated SQLite store and no model registry."""
    database_url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade(database_url)
    return os.environ | {
        "TRIAGE_DATABASE_URL": database_url,
        "TRIAGE_VAR_DIR": str(tmp_path),
        "TRIAGE_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'no-mlflow.db'}",
    }


def serve_until_exit(environment: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    """Run ``triage serve --workers 2`` expecting it to stop by itself; its output."""
    return subprocess.run(
        [str(TRIAGE), "serve", "--port", str(port), "--workers", "2", "--no-migrate"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def running(
    command: list[str], environment: dict[str, str], port: int, log_name: str
) -> Iterator[tuple[str, psutil.Process]]:
    """Start a server command (its own process group), wait until it answers, kill it after."""
    log_path = Path(os.environ.get(LOG_DIR_ENV) or environment["TRIAGE_VAR_DIR"]) / log_name
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or healthy(url))
        assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
        yield url, psutil.Process(process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture
def two_workers(environment: dict[str, str]) -> Iterator[tuple[str, int, psutil.Process]]:
    """``triage serve --workers 2`` on a free port: (url, port, the supervisor)."""
    port = free_port()
    command = [str(TRIAGE), "serve", "--port", str(port), "--workers", "2", "--no-migrate"]
    with running(command, environment, port, f"serve-{port}.log") as (url, supervisor):
        yield url, port, supervisor


def test_connections_are_handed_to_the_workers_in_turn_and_a_dead_one_is_replaced(
    two_workers: tuple[str, int, psutil.Process],
) -> None:
    url, port, supervisor = two_workers
    assert listens(supervisor, port)  # only the supervisor listens
    workers = wait_for(lambda: (w := workers_of(supervisor)) and len(w) == 2 and w)
    assert not any(listens(worker, port) for worker in workers)
    wait_for(lambda: serves_both(url, supervisor, port))  # both workers are ready
    clients = keep_alive_clients(url, 8)
    try:
        split = connections_per_worker(supervisor, port)
        assert sorted(split.values()) == [4, 4], split  # a hash would split 8 evenly 27% of runs
    finally:
        for client in clients:
            client.close()

    victim = workers[0].pid
    os.kill(victim, signal.SIGKILL)
    workers[0].wait(timeout=10)  # connections handed to it before it died are lost with it
    # While it is replaced, new connections go to the live worker.
    assert all(healthy(url) for _ in range(20))
    replaced = wait_for(
        lambda: (
            (w := workers_of(supervisor)) and len(w) == 2 and victim not in {p.pid for p in w} and w
        )
    )
    replacement = next(w for w in replaced if w.pid != workers[1].pid)

    def both_serve() -> bool:
        clients = keep_alive_clients(url, 4)
        try:
            return connections_per_worker(supervisor, port).get(replacement.pid, 0) == 2
        finally:
            for client in clients:
                client.close()

    wait_for(both_serve)


def test_sigterm_stops_every_worker(two_workers: tuple[str, int, psutil.Process]) -> None:
    _, _, supervisor = two_workers
    workers = wait_for(lambda: (w := workers_of(supervisor)) and len(w) == 2 and w)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


def test_two_workers_score_the_start_up_backlog_once(
    environment: dict[str, str], tmp_path: Path
) -> None:
    world = generate_world(WorldParams(n_referrals=1_500, seed=5, open_days=400))
    write_extract(world, tmp_path / "world")
    url = environment["TRIAGE_DATABASE_URL"]
    load_extract(tmp_path / "world", url=url, progress=False)
    scorer = tmp_path / "scorer.pkl"
    scorer.write_bytes(pickle.dumps(tiny_scorer(tmp_path / "scorer-world")))
    port = free_port()
    command = [sys.executable, str(SERVER_SCRIPT), "--port", str(port), "--workers", "2"]
    command += ["--scorer", str(scorer)]
    engine = make_engine(url)

    def unscored() -> int:
        with engine.connect() as connection:
            query = select(func.count()).where(QueueEntryRow.model_version.is_(None))
            return connection.execute(query).scalar_one()

    try:
        with running(command, environment, port, f"backlog-{port}.log"):
            wait_for(lambda: unscored() == 0, timeout=120)
            time.sleep(1)  # a second scorer, if there were one, would be at work by now
        with engine.connect() as connection:
            queued = connection.execute(select(func.count(QueueEntryRow.referral_id))).scalar_one()
            per_referral = connection.execute(
                select(ScoreRow.referral_id, func.count()).group_by(ScoreRow.referral_id)
            ).all()
    finally:
        engine.dispose()
    assert queued > 50
    assert len(per_referral) == queued
    assert {n for _, n in per_referral} == {1}


def test_a_taken_port_is_refused_with_a_message(environment: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_until_exit(environment, port)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout + result.stderr


@pytest.mark.parametrize("threads", [1, 3])
def test_intakes_run_at_most_intake_threads_at_once(settings: Settings, threads: int) -> None:
    running, most = 0, 0
    lock = threading.Lock()
    together = threading.Barrier(threads, timeout=10)  # fails unless `threads` run at once

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        together.wait()
        time.sleep(0.02)
        with lock:
            running -= 1
        return n

    configured = settings.model_copy(update={"intake_threads": threads})
    app = create_app(configured, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app):
        state = app.state.service

        async def six_at_once() -> list[int]:
            return list(await asyncio.gather(*(run_intake(state, work, n=n) for n in range(6))))

        assert asyncio.run(six_at_once()) == list(range(6))
    assert most == threads


def test_intake_threads_and_hold_default_by_database(settings: Settings) -> None:
    assert settings.intake_concurrency() == 1  # SQLite: one writer, one GIL
    assert settings.intake_hold_seconds() == 0.05
    postgres = settings.model_copy(update={"database_url": "postgresql+psycopg://db/triage"})
    assert postgres.intake_concurrency() == 40
    assert postgres.intake_hold_seconds() == 0


def test_intakes_authenticate_on_the_loop_only_with_held_intakes(settings: Settings) -> None:
    held = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    unheld = create_app(
        settings.model_copy(update={"intake_hold_ms": 0}),
        scorer_loader=lambda: None,
        score_backlog_on_start=False,
    )
    with TestClient(held) as client, TestClient(unheld):
        assert held.state.service.loop_read_sessions is not None
        assert unheld.state.service.loop_read_sessions is None
        refused = client.post(
            "/v1/referrals", json={}, headers={"Authorization": "Bearer trk_unknown"}
        )
    assert refused.status_code == 401  # the loop's lookup still refuses an unknown key


@pytest.mark.parametrize("freeze", [True, False])
def test_start_up_freezes_the_garbage_collector_when_set(settings: Settings, freeze: bool) -> None:
    assert settings.gc_freeze is False  # tests/conftest.py turns it off for the suite
    configured = settings.model_copy(update={"gc_freeze": freeze})
    app = create_app(configured, scorer_loader=lambda: None, score_backlog_on_start=False)
    gc.unfreeze()
    try:
        with TestClient(app):
            frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
    assert (frozen > 10_000) == freeze


@pytest.mark.parametrize(
    ("hold_ms", "work_seconds", "loop_runs_meanwhile"),
    [(1000, 0.1, False), (0, 0.1, True), (20, 0.3, True)],
    ids=["held", "not-held", "longer-than-the-hold"],
)
def test_the_loop_waits_on_the_spot_only_for_an_intake_within_the_hold(
    settings: Settings, hold_ms: float, work_seconds: float, loop_runs_meanwhile: bool
) -> None:
    configured = settings.model_copy(update={"intake_hold_ms": hold_ms})
    app = create_app(configured, scorer_loader=lambda: None, score_backlog_on_start=False)

    def work(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    async def turns_of_the_loop_during_an_intake() -> int:
        turns = 0

        async def count_turns() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        before = turns
        assert await run_intake(app.state.service, work, seconds=work_seconds) == "done"
        during = turns - before
        counter.cancel()
        return during

    with TestClient(app):
        during = asyncio.run(turns_of_the_loop_during_an_intake())
    assert (during > 10) if loop_runs_meanwhile else (during <= 1)


def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    environment = os.environ | {
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.db'}",
        "TRIAGE_VAR_DIR": str(tmp_path),
        "TRIAGE_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'no-mlflow.db'}",
    }
    result = serve_until_exit(environment, free_port())
    assert result.returncode == 3, result.stderr[-2000:]
    assert "could not start; stopping" in result.stderr


def test_triage_serve_leaves_the_backlog_to_the_first_worker(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    seen: list[tuple[ServerOptions, int]] = []
    monkeypatch.setattr(serving, "serve", lambda options, workers: seen.append((options, workers)))
    for name, value in environment.items():
        if name.startswith("TRIAGE_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli.app, ["serve", "--port", str(free_port()), "--workers", "2", "--no-migrate"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    [(options, workers)] = seen
    assert workers == 2
    assert options.app == "api.app:create_app"
    assert options.followers_env == {"TRIAGE_SCORE_BACKLOG": "false"}


def test_a_dead_worker_is_skipped_and_a_connection_no_worker_can_take_waits() -> None:
    listener = serving.listening_socket("127.0.0.1", 0)
    supervisor = serving.Supervisor(ServerOptions("unused:app"), 2, listener)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(2)]
    for index, (ours, _) in enumerate(pairs):
        ours.setblocking(False)
        supervisor.selector.register(ours, selectors.EVENT_READ, index)
        supervisor.channels.append(ours)
        supervisor.ready.append(True)
    dead, busy = pairs[0][1], pairs[1][1]
    dead.close()  # worker 0 died; the supervisor has not heard yet
    filler = 0
    with contextlib.suppress(BlockingIOError):
        while True:  # worker 1's queue fills up (its loop is stalled)
            pairs[1][0].send(b"x")
            filler += 1
    supervisor._listen(supervisor._should_accept())
    client = socket.create_connection(listener.getsockname(), timeout=5)
    try:
        time.sleep(0.1)
        supervisor._accept()
        assert supervisor.channels[0] is None, "a worker whose end is closed is forgotten"
        supervisor._hear(0)  # a stale readiness event for it does nothing
        assert len(supervisor.pending) == 1 and not supervisor._should_accept()
        for _ in range(filler):  # worker 1 catches up
            busy.recv(16)
        supervisor._hand_pending()
        assert not supervisor.pending and supervisor._should_accept()
        _, fds, _, _ = socket.recv_fds(busy, 16, 4)
        with socket.socket(fileno=fds[0]) as handed:
            client.sendall(b"ping")
            assert handed.recv(4) == b"ping"
    finally:
        client.close()
        supervisor._close_listener()
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
