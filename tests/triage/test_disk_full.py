"""Nothing acknowledged is lost when the store cannot commit (issue 17, item 1).

On SQLite the store sits on a real size-limited filesystem (a tmpfs this test mounts) that is
then filled; on PostgreSQL the server itself refuses the COMMIT with SQLSTATE 53100
(``disk_full``), raised by a deferred constraint trigger. Either way every write that did not
commit gets 503 ``store_unavailable`` with ``Retry-After``, the log says why, ``/readyz`` is
503 ``failing`` until a write commits again, and retrying with the same Idempotency-Key once
there is room stores each referral exactly once.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from access_helpers import key_headers
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings
from triage.store import ReferralRow, make_engine, session_factory
from triage.store.auditlog import verify_chain
from triage.store.migrate import upgrade

FILESYSTEM_BYTES = 8 * 1024 * 1024
ATTEMPTS = 6


@contextmanager
def small_filesystem(where: Path) -> Iterator[Path]:
    """A tmpfs of ``FILESYSTEM_BYTES`` mounted at ``where``; skipped where mounting is refused.

    Under CI (``CI=true``, run as root) it must mount: a skip there would hide the test.
    """
    where.mkdir()
    reason = None
    if os.geteuid() != 0:
        reason = "mounting a size-limited tmpfs needs root"
    else:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={FILESYSTEM_BYTES},mode=0700", "tmpfs", where],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            reason = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the disk-full test must run, not skip)")
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", where], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no room left; return it."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return filler


def referral(n: int) -> dict[str, Any]:
    """A valid referral with its own business key."""
    return copy.deepcopy(REFERRAL_EXAMPLE) | {"source_referral_id": f"DISK-{n}"}


def stored(database_url: str, table: type, *where: Any) -> int:
    """Rows in ``table`` as the store holds them now."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(table).where(*where)
            return connection.execute(query).scalar_one()
    finally:
        engine.dispose()


def chain_ok(database_url: str) -> bool:
    """The audit chain verifies."""
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return verify_chain(session).ok
    finally:
        engine.dispose()


def post(client: TestClient, headers: dict[str, str], n: int) -> Any:
    """POST referral ``n`` with its own Idempotency-Key."""
    return client.post(
        "/v1/referrals", json=referral(n), headers=headers | {"Idempotency-Key": f"disk-{n}"}
    )


def assert_refused(response: Any) -> None:
    """503 store_unavailable with Retry-After, nothing acknowledged."""
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "store_unavailable"
    assert "disk_full" in response.json()["error"]["message"]
    assert int(response.headers["Retry-After"]) > 0
    assert "referral_id" not in response.text


def store_logs(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The structured store_unavailable lines the service logged."""
    lines = []
    for record in caplog.records:
        try:
            entry = json.loads(record.getMessage())
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "store_unavailable":
            lines.append(entry)
    return lines


def run_scenario(
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    *,
    make_full: Callable[[], None],
    make_room: Callable[[], None],
    code: str,
) -> None:
    """Intake before, during and after the store is full; check what was acknowledged."""
    url = settings.database_url
    key = key_headers(url, REFERRAL_EXAMPLE["source_system"])
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert post(client, key, 0).status_code == 201
        make_full()
        with caplog.at_level("INFO"):
            refused = [post(client, key, n) for n in range(1, ATTEMPTS + 1)]
            ready = client.get("/readyz")
        for response in refused:
            assert_refused(response)
        assert stored(url, ReferralRow) == 1  # only the referral sent before the disk filled
        logged = store_logs(caplog)
        assert len(logged) == ATTEMPTS
        assert {(e["reason"], e["code"]) for e in logged} == {("disk_full", code)}
        assert {e["route"] for e in logged} == {"/v1/referrals"}
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"] | {"model": None} == {
            "database": "failing",
            "database_reason": "disk_full",
            "model": None,
        }
        assert client.get("/readyz").status_code == 503  # still failing: the probe fails too

        make_room()
        assert client.get("/readyz").status_code == 200  # its probe write commits again
        retried = [post(client, key, n) for n in range(1, ATTEMPTS + 1)]
        assert [r.status_code for r in retried] == [201] * ATTEMPTS, retried[-1].text
        again = [post(client, key, n) for n in range(1, ATTEMPTS + 1)]
        assert [r.json() for r in again] == [r.json() for r in retried]
        assert {r.headers.get("Idempotent-Replayed") for r in again} == {"true"}
    for n in range(ATTEMPTS + 1):
        business_key = ReferralRow.source_referral_id == f"DISK-{n}"
        assert stored(url, ReferralRow, business_key) == 1
    assert chain_ok(url)


def test_sqlite_on_a_full_disk_refuses_instead_of_acknowledging(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_filesystem(tmp_path / "small") as disk:
        url = f"sqlite:///{disk / 'triage.db'}"
        upgrade(url)
        settings = Settings(
            var_dir=tmp_path, database_url=url, mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db"
        )
        filler: list[Path] = []
        run_scenario(
            settings,
            caplog,
            make_full=lambda: filler.append(fill(disk)),
            make_room=lambda: filler.pop().unlink(),
            code="SQLITE_FULL",
        )


SIMULATED_DISK = """
CREATE TABLE sim_disk (is_full boolean NOT NULL);
INSERT INTO sim_disk VALUES (false);
CREATE FUNCTION sim_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT is_full FROM sim_disk) THEN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
  END IF;
  RETURN NULL;
END $$;
"""
# Every write path appends an audit event, and /readyz probes store_probes: a deferred
# trigger on both makes each of their COMMITs fail on the server, as a full disk would.
SIMULATED_TABLES = ("audit_events", "store_probes")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_failed_commit_refuses_instead_of_acknowledging(
    migrated_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin = make_engine(migrated_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(SIMULATED_DISK)
            for table in SIMULATED_TABLES:
                connection.exec_driver_sql(
                    f"CREATE CONSTRAINT TRIGGER sim_disk_full AFTER INSERT OR UPDATE ON {table} "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sim_disk_full()"
                )

        def disk(full: bool) -> Callable[[], None]:
            def switch() -> None:
                with admin.begin() as connection:
                    connection.exec_driver_sql(f"UPDATE sim_disk SET is_full = {full}")

            return switch

        settings = Settings(
            var_dir=tmp_path,
            database_url=migrated_url,
            mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db",
        )
        run_scenario(settings, caplog, make_full=disk(True), make_room=disk(False), code="53100")
    finally:
        admin.dispose()


def test_a_commit_refused_with_the_transaction_still_open_still_raises(tmp_path: Path) -> None:
    """The early-COMMIT hook leaves such a failure to the driver's commit, which raises it."""
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            connection.exec_driver_sql(
                "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))"
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
            connection.exec_driver_sql("INSERT INTO child VALUES (7)")  # checked at COMMIT
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM child").scalar() == 0
    finally:
        engine.dispose()
