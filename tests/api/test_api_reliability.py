"""The real service under uvicorn: SIGKILLed during concurrent intake; two workers on PostgreSQL.

The server is ``scripts/reliability_server.py``: ``api.app.create_app`` under uvicorn, as
``triage serve`` runs it, but scoring with a small pickled scorecard instead of an MLflow
champion (registering one would cost a training run per test session).
"""

from __future__ import annotations

import copy
import itertools
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings
from triage.store import (
    AuditEventRow,
    DecisionRow,
    EventRow,
    QueueEntryRow,
    ReferralRow,
    make_engine,
)
from triage.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = ROOT / "scripts" / "reliability_server.py"
sys.path.insert(0, str(SERVER_SCRIPT.parent))
from access_helpers import key_headers, user_headers  # noqa: E402
from pii_scan import LOG_DIR_ENV  # noqa: E402
from reliability_server import tiny_scorer  # noqa: E402

KILLS = 5
CLIENTS = 8
_serial = itertools.count()


@pytest.fixture(scope="module")
def scorer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fitted scorecard, pickled for the server processes to load."""
    directory = tmp_path_factory.mktemp("scorer")
    path = directory / "scorer.pkl"
    path.write_bytes(pickle.dumps(tiny_scorer(directory / "world")))
    return path


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """The service in a subprocess (its own process group), restartable on the same port."""

    database_url: str
    var_dir: Path
    scorer: Path | None
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers ``/v1/health``."""
        env = os.environ | {
            "TRIAGE_DATABASE_URL": self.database_url,
            "TRIAGE_VAR_DIR": str(self.var_dir),
            "TRIAGE_MLFLOW_TRACKING_URI": f"sqlite:///{self.var_dir / 'no-mlflow.db'}",
        }
        command = [sys.executable, str(SERVER_SCRIPT), "--port", str(self.port)]
        command += ["--workers", str(self.workers)]
        if self.scorer is not None:
            command += ["--scorer", str(self.scorer)]
        self.starts += 1
        log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout} s: {self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the server's process group (uvicorn and any workers) and reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), or kill if it does not stop in time."""
        try:
            self.kill(signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def log_path(self) -> Path:
        """The latest start's stdout and stderr: in the session's log directory, for its scan."""
        log_dir = Path(os.environ.get(LOG_DIR_ENV) or self.var_dir)
        return log_dir / f"server-{self.name}-{self.starts}.log"

    def log(self) -> str:
        """The latest start's output, last part only."""
        return self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``serve(database_url, scorer=None, workers=1)`` starts a server, stopped afterwards."""
    servers: list[Server] = []

    def start(database_url: str, scorer: Path | None = None, workers: int = 1) -> Server:
        server = Server(database_url, tmp_path, scorer, workers)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def referral(**overrides: Any) -> dict[str, Any]:
    """A valid referral body with a fresh business key (children and households recur)."""
    n = next(_serial)
    body = copy.deepcopy(REFERRAL_EXAMPLE)
    body["source_referral_id"] = f"REL-{uuid.uuid4().hex[:8]}-{n}"
    body["child"] |= {"child_id": f"C-rel-{n % 40}", "household_id": f"H-rel-{n % 40}"}
    body.update(overrides)
    return body


def business_key(body: dict[str, Any]) -> tuple[str, str]:
    """(source_system, source_referral_id)."""
    return body["source_system"], body["source_referral_id"]


# --- crash safety ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    answered: dict[tuple[str, str], str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    replayed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit_until_answered(
    client: httpx.Client, base_url: str, body: dict[str, Any], tally: Tally, give_up: float
) -> httpx.Response:
    """POST one referral, retrying with the same Idempotency-Key as a referral system would."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}  # the client carries the API key
    while time.monotonic() < give_up:
        try:
            response = client.post(f"{base_url}/v1/referrals", json=body, headers=headers)
        except httpx.TransportError:  # refused, reset or timed out: the server may be down
            with tally.lock:
                tally.transport_errors += 1
            time.sleep(0.1)
            continue
        with tally.lock:
            tally.statuses[response.status_code] += 1
            tally.replayed += response.headers.get("Idempotent-Replayed") == "true"
        if response.status_code == 409:  # the key is held by our own attempt in flight
            time.sleep(0.05)
            continue
        return response
    raise TimeoutError(f"no answer for {business_key(body)}")


def test_sigkill_five_times_during_concurrent_intake_stores_each_referral_once(
    tmp_path: Path, serve: Callable[..., Server], scorer_file: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade(url)
    api_key = key_headers(url, REFERRAL_EXAMPLE["source_system"])
    server = serve(url, scorer=scorer_file)
    tally = Tally()
    stop = threading.Event()
    give_up = time.monotonic() + 75
    sent: list[dict[str, Any]] = []
    failures: list[str] = []

    def client_loop() -> None:
        timeout = httpx.Timeout(5.0, connect=1.0)
        with httpx.Client(timeout=timeout, headers=api_key) as client:
            while not stop.is_set():
                body = referral()
                with tally.lock:
                    sent.append(body)
                response = submit_until_answered(client, server.url, body, tally, give_up)
                if response.status_code not in (200, 201):
                    failures.append(f"{response.status_code}: {response.text[:300]}")
                    continue
                with tally.lock:
                    tally.answered[business_key(body)] = response.json()["referral_id"]

    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client_loop) for _ in range(CLIENTS)]
        try:
            for _ in range(KILLS):
                # Kill only once intake is flowing again, so every kill lands mid-request.
                floor = len(tally.answered) + CLIENTS
                while len(tally.answered) < floor and time.monotonic() < give_up:
                    time.sleep(0.02)
                time.sleep(0.2)
                server.kill()
                server.start()
            time.sleep(0.5)
        finally:
            stop.set()
        for future in clients:
            future.result()
    server.stop()

    assert not failures, failures[:5]
    assert tally.transport_errors > 0, "the kills should have cut requests off"
    assert len(tally.answered) == len(sent), "every referral is eventually answered"
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                select(
                    ReferralRow.source_system,
                    ReferralRow.source_referral_id,
                    ReferralRow.referral_id,
                )
            ).all()
            received = Counter(
                connection.scalars(
                    select(AuditEventRow.entity_id).where(
                        AuditEventRow.action == "referral.received"
                    )
                )
            )
            queued = set(connection.scalars(select(QueueEntryRow.referral_id)))
    finally:
        engine.dispose()
    by_key = Counter((system, source_id) for system, source_id, _ in stored)
    assert [key for key, n in by_key.items() if n > 1] == [], "a business key stored twice"
    ids = {(system, source_id): referral_id for system, source_id, referral_id in stored}
    assert ids == tally.answered, "each answered referral stored once, as answered; no others"
    assert set(received) == set(ids.values()) and set(received.values()) == {1}
    assert queued == set(ids.values()), "every open referral is in the queue"
    print(
        f"\n{len(sent)} referrals, {KILLS} kills, {tally.transport_errors} failed attempts, "
        f"{tally.replayed} replies replayed, statuses {dict(tally.statuses)}"
    )


# --- PostgreSQL, two workers ----------------------------------------------------------------


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A private, migrated schema on the PostgreSQL test server."""
    schema = f"t_{uuid.uuid4().hex}"
    admin = make_engine(postgres_server_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(postgres_server_url).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        rendered = url.render_as_string(hide_password=False)
        upgrade(rendered)
        yield rendered
        with admin.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


def together(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls at once (a barrier releases them together), each on its own connection."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _post(
    url: str, body: Any, headers: dict[str, str] | None = None
) -> Callable[[], httpx.Response]:
    """A POST on a fresh connection, so the kernel spreads them over the workers."""
    return lambda: httpx.post(url, json=body, headers=headers, timeout=30.0)


def admin_headers(database_url: str, var_dir: Path) -> dict[str, str]:
    """An admin's token, signed with the secret the server reads from ``var_dir``."""
    return user_headers(Settings(var_dir=var_dir, database_url=database_url), "admin")


def count(url: str, table: type, *where: Any) -> int:
    """Rows in ``table`` matching ``where``."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(table).where(*where)
            return connection.execute(query).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_workers_on_postgres_intake_once_and_decide_once(
    postgres_url: str, serve: Callable[..., Server], scorer_file: Path
) -> None:
    server = serve(postgres_url, scorer=scorer_file, workers=2)
    referrals_url = f"{server.url}/v1/referrals"
    admin = admin_headers(postgres_url, server.var_dir)

    def post(url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return _post(url, body, (headers or {}) | admin)

    # The same referral from several clients at once: one 201, the rest return it with 200
    # (a resend with different content is a 409, tests/api/test_resend_conflicts.py).
    bodies = [referral() for _ in range(4)]
    calls = [post(referrals_url, body) for body in bodies for _ in range(CLIENTS // 2)]
    replies = together(calls)
    ids: list[str] = []
    for n, body in enumerate(bodies):
        mine = replies[n * (CLIENTS // 2) : (n + 1) * (CLIENTS // 2)]
        assert sorted(r.status_code for r in mine) == [200] * (CLIENTS // 2 - 1) + [201]
        assert len({r.json()["referral_id"] for r in mine}) == 1
        # A resend can overtake the scoring of the first, which runs after its commit.
        assert next(r for r in mine if r.status_code == 201).json()["status"] == "scored"
        ids.append(mine[0].json()["referral_id"])
        key = business_key(body)
        assert (
            count(
                postgres_url,
                ReferralRow,
                ReferralRow.source_system == key[0],
                ReferralRow.source_referral_id == key[1],
            )
            == 1
        )

    # One Idempotency-Key sent by several clients at once: one referral, one answer for all.
    body, headers = referral(), {"Idempotency-Key": uuid.uuid4().hex}
    answers = []
    for reply in together([post(referrals_url, body, headers) for _ in range(CLIENTS // 2)]):
        while reply.status_code == 409:  # another request holds the key: retry, as documented
            time.sleep(0.05)
            reply = post(referrals_url, body, headers)()
        assert reply.status_code in (200, 201), reply.text
        answers.append(reply.json()["referral_id"])
    assert len(set(answers)) == 1
    ids.append(answers[0])
    assert count(postgres_url, ReferralRow) == len(ids)

    queue = httpx.get(
        f"{server.url}/v1/queue", params={"limit": 200}, headers=admin, timeout=30.0
    ).json()
    assert sorted(item["referral_id"] for item in queue["items"]) == sorted(ids)

    # Two decisions on the same referral at once: one 201, one 409, one decision stored.
    decision = {"decision": "assessment", "agreement": "agree"}
    decided = together(
        [post(f"{referrals_url}/{i}/decisions", decision) for i in ids for _ in "ab"]
    )
    for n, referral_id in enumerate(ids):
        pair = decided[2 * n : 2 * n + 2]
        assert sorted(r.status_code for r in pair) == [201, 409], [r.text for r in pair]
        assert next(r for r in pair if r.status_code == 409).json()["error"]["code"] == (
            "already_decided"
        )
        assert count(postgres_url, DecisionRow, DecisionRow.referral_id == referral_id) == 1
    queue = httpx.get(f"{server.url}/v1/queue", headers=admin, timeout=30.0).json()
    assert queue["items"] == []

    # The same batch of agency events from four clients at once: each event stored once.
    events = [
        {"source_system": "police-niche", "source_event_id": f"DA-{uuid.uuid4().hex[:8]}",
         "agency": "police", "kind": "domestic_abuse_incident",
         "occurred_at": "2026-04-10T22:40:00Z", "household_id": "H-rel-0"}
        for _ in range(3)
    ]  # fmt: skip
    batches = together([post(f"{server.url}/v1/events", events) for _ in range(4)])
    assert all(r.status_code in (200, 201) for r in batches), [r.text for r in batches]
    assert sum(r.json()["created"] for r in batches) == len(events)
    assert count(postgres_url, EventRow) == len(events)
