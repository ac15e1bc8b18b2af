"""The hash-chained audit log: verify passes after activity and names the first broken link."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest
from access_helpers import key_headers, user_headers
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text, update
from typer.testing import CliRunner

from api.app import create_app
from cli.app import app as cli
from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings
from triage.store import AuditEventRow, add_audit_event, make_engine, session_factory
from triage.store.auditlog import GENESIS, verify_chain


def activity(settings: Settings) -> None:
    """Intake, a view, the queue, a decision, a dispute, a failed and a good login."""
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    key = key_headers(settings.database_url, REFERRAL_EXAMPLE["source_system"])
    practitioner = user_headers(settings, "practitioner", username="pat")
    with TestClient(app) as client:
        ids = []
        for n in range(3):
            body = copy.deepcopy(REFERRAL_EXAMPLE) | {"source_referral_id": f"AUD-{n}"}
            ids.append(client.post("/v1/referrals", json=body, headers=key).json()["referral_id"])
        client.get(f"/v1/referrals/{ids[0]}", headers=practitioner)
        client.get("/v1/queue", headers=practitioner)
        client.post(
            f"/v1/referrals/{ids[0]}/decisions",
            json={"decision": "assessment", "agreement": "agree"},
            headers=practitioner,
        )
        client.post(
            f"/v1/referrals/{ids[1]}/disputes",
            json={"record_id": ids[0], "reason": "another child"},
            headers=practitioner,
        )
        client.post("/v1/auth/token", json={"username": "pat", "password": "nope"})
        client.post(
            "/v1/auth/token",
            json={"username": "pat", "password": "correct horse battery staple"},
        )


def verify(settings: Settings) -> tuple[int, str]:
    """Run ``triage auditlog verify`` against the settings' database."""
    env = {"TRIAGE_DATABASE_URL": settings.database_url, "TRIAGE_VAR_DIR": str(settings.var_dir)}
    result = CliRunner().invoke(cli, ["auditlog", "verify"], env=env)
    return result.exit_code, result.output


def test_verify_passes_after_activity_and_covers_views_and_logins(settings: Settings) -> None:
    activity(settings)
    code, output = verify(settings)
    assert code == 0, output
    assert "intact" in output
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            actions = set(session.scalars(select(AuditEventRow.action)))
    finally:
        engine.dispose()
    assert {
        "key.created", "user.created", "referral.received", "referral.viewed", "queue.viewed",
        "referral.decided", "referral.disputed", "auth.login_failed", "auth.login",
    } <= actions  # fmt: skip


def _tamper(engine: Engine, event_id: int, column: str) -> None:
    """Change one byte of one stored column, behind the service's back."""
    with engine.begin() as connection:
        raw = connection.execute(
            text(f"SELECT CAST({column} AS TEXT) FROM audit_events WHERE id = :id"),
            {"id": event_id},
        ).scalar_one()
        position = next(i for i, ch in enumerate(raw) if ch.isalnum())
        flipped = chr(ord(raw[position]) ^ 1)
        changed = raw[:position] + flipped + raw[position + 1 :]
        connection.execute(
            text(f"UPDATE audit_events SET {column} = :value WHERE id = :id"),
            {"value": changed, "id": event_id},
        )


@pytest.mark.parametrize("column", ["actor", "action", "entity_id", "payload", "hash"])
def test_a_one_byte_change_to_any_event_breaks_the_chain_there(
    settings: Settings, column: str
) -> None:
    activity(settings)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            victim = connection.execute(
                select(AuditEventRow.id).where(AuditEventRow.action == "referral.viewed").limit(1)
            ).scalar_one()
        _tamper(engine, victim, column)
    finally:
        engine.dispose()
    code, output = verify(settings)
    assert code == 1
    # Changing an event's stored hash shows at that event: it no longer matches its contents.
    assert f"broken at event {victim}:" in output, output


def test_removing_an_event_breaks_the_link_after_it(settings: Settings) -> None:
    activity(settings)
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            ids = connection.scalars(select(AuditEventRow.id).order_by(AuditEventRow.id)).all()
            connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[3]})
        with session_factory(engine)() as session:
            report = verify_chain(session)
    finally:
        engine.dispose()
    assert report.broken is not None and report.broken.event_id == ids[4]
    assert "prev_hash" in report.broken.reason


def test_a_changed_timestamp_breaks_the_chain(settings: Settings) -> None:
    activity(settings)
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            first = connection.scalars(select(AuditEventRow.id).order_by(AuditEventRow.id)).first()
            connection.execute(
                update(AuditEventRow)
                .where(AuditEventRow.id == first)
                .values(occurred_at=AuditEventRow.occurred_at)  # unchanged: still intact
            )
        with session_factory(engine)() as session:
            assert verify_chain(session).ok
            row = session.get(AuditEventRow, first)
            assert row is not None
            row.occurred_at = row.occurred_at.replace(
                microsecond=(row.occurred_at.microsecond + 1) % 10**6
            )
            session.commit()
            assert verify_chain(session).broken.event_id == first  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_concurrent_appends_form_one_chain(engine: Engine) -> None:
    """Writers racing to append (SQLite and PostgreSQL) never chain onto the same event."""
    sessions = session_factory(engine)

    def append(n: int) -> None:
        for i in range(10):
            with sessions() as session:
                add_audit_event(
                    session,
                    actor=f"writer-{n}",
                    action="test.appended",
                    entity_type="test",
                    entity_id=str(i),
                    payload={"n": n, "i": i, "ratio": i / 7},
                )
                session.commit()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(append, range(6)))
    with sessions() as session:
        report = verify_chain(session)
        prevs = session.scalars(select(AuditEventRow.prev_hash)).all()
    assert report.ok and report.events == 60
    assert len(set(prevs)) == 60 and GENESIS in prevs
