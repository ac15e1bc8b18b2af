"""`triage serve --workers N`: a socket per worker, a dead worker replaced, a taken port refused."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from api.deps import run_intake
from triage.store.migrate import upgrade

TRIAGE = Path(sys.executable).parent / "triage"


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_workers(supervisor: psutil.Process, port: int) -> dict[int, int]:
    """Worker pid -> how many sockets it listens on at ``port``."""
    found = {}
    for child in supervisor.children():
        try:
            sockets = child.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        listening = [c for c in sockets if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        if listening:
            found[child.pid] = len(listening)
    return found


def wait_for(condition, timeout: float = 60.0):  # type: ignore[no-untyped-def]
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


@pytest.fixture
def two_workers(
    environment: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, int, psutil.Process]]:
    """``triage serve --workers 2`` on a free port: (url, port, the supervisor)."""
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(TRIAGE), "serve", "--port", str(port), "--workers", "2", "--no-migrate"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or healthy(url))
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        yield url, port, psutil.Process(process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_each_worker_listens_on_its_own_socket_and_a_dead_one_is_replaced(
    two_workers: tuple[str, int, psutil.Process],
) -> None:
    url, port, supervisor = two_workers
    workers = wait_for(lambda: (w := listening_workers(supervisor, port)) and len(w) == 2 and w)
    assert sorted(workers.values()) == [1, 1]  # two sockets, one each
    assert not [c for c in supervisor.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]

    victim = next(iter(workers))
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(
        lambda: (w := listening_workers(supervisor, port)) and len(w) == 2 and victim not in w and w
    )
    assert victim not in replaced
    # New connections reach a live worker while and after the dead one is replaced.
    assert all(healthy(url) for _ in range(20))


def test_sigterm_stops_every_worker(two_workers: tuple[str, int, psutil.Process]) -> None:
    _, port, supervisor = two_workers
    workers = [psutil.Process(pid) for pid in wait_for(lambda: listening_workers(supervisor, port))]
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


def test_a_taken_port_is_refused_with_a_message(environment: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(TRIAGE), "serve", "--port", str(port), "--workers", "2", "--no-migrate"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stdout + result.stderr


@pytest.mark.parametrize("threads", [1, 3])
def test_intakes_run_at_most_intake_threads_at_once(threads: int) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return n

    class State:
        intake_threads = ThreadPoolExecutor(threads)

    async def six_at_once() -> list[int]:
        return await asyncio.gather(*(run_intake(State, work, n=n) for n in range(6)))  # type: ignore[arg-type]

    try:
        assert asyncio.run(six_at_once()) == list(range(6))
    finally:
        State.intake_threads.shutdown()
    assert most == threads
