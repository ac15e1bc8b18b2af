"""The audit chain anchored by signed checkpoints outside the store (issue 17, item 7).

The hash chain alone verifies after its newest rows are deleted, or after every row is
rewritten and hashed again; the checkpoint file (HMAC under a key outside the database)
catches both, and the service never signs a chain that departs from its last checkpoint.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
from access_helpers import key_headers
from fastapi.testclient import TestClient
from test_auditlog import activity
from typer.testing import CliRunner

from api.app import create_app
from cli.app import app as cli
from triage.schema import REFERRAL_EXAMPLE
from triage.settings import Settings, get_settings
from triage.store import AuditEventRow, make_engine, session_factory
from triage.store.auditlog import GENESIS, normalise_payload, row_hash


def run(settings: Settings, *args: str, **env: str) -> tuple[int, str]:
    """Run ``triage auditlog ARGS`` against the settings' store and var directory."""
    get_settings.cache_clear()
    environment = {
        "TRIAGE_DATABASE_URL": settings.database_url,
        "TRIAGE_VAR_DIR": str(settings.var_dir),
    } | env
    result = CliRunner().invoke(cli, ["auditlog", *args], env=environment)
    get_settings.cache_clear()
    return result.exit_code, " ".join(result.output.split())  # unwrap rich's line breaks


_serial = itertools.count()


def more_activity(settings: Settings) -> None:
    """Run the service again for two more referrals (and the checkpoints it signs)."""
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    key = key_headers(settings.database_url, REFERRAL_EXAMPLE["source_system"])
    with TestClient(app) as client:
        for _ in range(2):
            body = copy.deepcopy(REFERRAL_EXAMPLE) | {"source_referral_id": f"ANC-{next(_serial)}"}
            assert client.post("/v1/referrals", json=body, headers=key).status_code == 201


def event_ids(settings: Settings) -> list[int]:
    """Every stored audit event id, oldest first."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(AuditEventRow.__table__.select().with_only_columns(
                AuditEventRow.id).order_by(AuditEventRow.id)))  # fmt: skip
    finally:
        engine.dispose()


def delete_newest(settings: Settings, n: int) -> list[int]:
    """Delete the newest ``n`` events behind the service's back; return their ids."""
    victims = event_ids(settings)[-n:]
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                AuditEventRow.__table__.delete().where(AuditEventRow.id.in_(victims))
            )
    finally:
        engine.dispose()
    return victims


def rewrite_and_rehash(settings: Settings) -> None:
    """Change one event's payload, then hash the whole chain again as the service would."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            rows = list(session.scalars(AuditEventRow.__table__.select().with_only_columns(
                AuditEventRow).order_by(AuditEventRow.id)))  # fmt: skip
            rows = [session.get(AuditEventRow, row.id) for row in rows]
            viewed = next(row for row in rows if row.action == "referral.viewed")
            viewed.actor = "someone-else"
            viewed.payload = normalise_payload({"rewritten": True})
            prev = GENESIS
            for row in rows:
                row.prev_hash = prev
                row.hash = row_hash(row, prev)
                prev = row.hash
            session.commit()
    finally:
        engine.dispose()


@pytest.fixture
def anchored(settings: Settings) -> Settings:
    """A store after some activity; the app signed a checkpoint as it stopped."""
    activity(settings)
    assert settings.audit_checkpoint_path().exists()
    return settings


def test_an_untouched_chain_verifies_and_is_anchored(anchored: Settings) -> None:
    code, output = run(anchored, "verify")
    assert code == 0, output
    head = event_ids(anchored)[-1]
    assert "Audit chain intact" in output
    assert f"Anchored: event {head} " in output


def test_truncating_the_newest_events_is_detected(anchored: Settings) -> None:
    removed = delete_newest(anchored, 3)
    code, output = run(anchored, "verify")
    assert code == 1, output
    assert f"broken at event {removed[-1]}:" in output
    assert f"the chain ends at event {removed[0] - 1}" in output
    assert "the newest events were removed" in output


def test_rewriting_and_rehashing_the_whole_chain_is_detected(anchored: Settings) -> None:
    rewrite_and_rehash(anchored)
    head = event_ids(anchored)[-1]
    code, output = run(anchored, "verify")
    assert code == 1, output
    assert f"broken at event {head}:" in output
    assert "differs from the one in the signed checkpoint: the chain was rewritten" in output


def test_a_forged_checkpoint_is_refused(anchored: Settings) -> None:
    removed = delete_newest(anchored, 2)
    path = anchored.audit_checkpoint_path()
    forged = json.loads(path.read_text())
    forged["event_id"] = removed[0] - 1  # matches the truncated chain, without the key
    path.write_text(json.dumps(forged))
    code, output = run(anchored, "verify")
    assert code == 1, output
    assert "Audit checkpoint not trusted" in output and "MAC" in output


def test_a_checkpoint_signed_with_another_key_is_refused(anchored: Settings) -> None:
    code, output = run(anchored, "verify", TRIAGE_AUDIT_KEY="not-the-key-that-signed-it")
    assert code == 1, output
    assert "signed with another key" in output


def test_a_missing_checkpoint_fails_verify(anchored: Settings) -> None:
    anchored.audit_checkpoint_path().unlink()
    code, output = run(anchored, "verify")
    assert code == 1, output
    assert "not anchored" in output and "triage auditlog checkpoint" in output


def test_a_tampered_chain_is_never_signed_again(
    anchored: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    path = anchored.audit_checkpoint_path()
    before = path.read_bytes()
    delete_newest(anchored, 2)
    code, output = run(anchored, "checkpoint")
    assert code == 1, output
    assert "Checkpoint refused" in output and "newest events were removed" in output
    rewrite_and_rehash(anchored)
    with caplog.at_level("ERROR", logger="service.audit"):
        more_activity(anchored)  # the service runs on the rewritten chain: it does not sign it
    assert path.read_bytes() == before
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "service.audit"]
    assert logged and {entry["event"] for entry in logged} == {"audit_chain_unanchored"}
    assert "signed checkpoint" in logged[0]["reason"]
    assert run(anchored, "verify")[0] == 1


def test_a_removed_checkpoint_is_not_signed_afresh_by_the_service(anchored: Settings) -> None:
    # Rewrite the chain, drop its newest events and remove the file: without the key, an
    # attacker should not get the service to vouch for the result when it next starts.
    rewrite_and_rehash(anchored)
    delete_newest(anchored, 2)
    anchored.audit_checkpoint_path().unlink()
    more_activity(anchored)
    assert not anchored.audit_checkpoint_path().exists()
    code, output = run(anchored, "verify")
    assert code == 1 and "not anchored" in output, output


def test_checkpoints_advance_with_the_chain(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "checkpoint.json"
    env = {"TRIAGE_AUDIT_CHECKPOINT_FILE": str(outside)}
    activity(settings)
    # No checkpoint file there yet, and the chain holds events: only an operator anchors it.
    code, output = run(settings, "checkpoint", **env)
    assert code == 1 and "--first" in output, output
    code, output = run(settings, "checkpoint", "--first", **env)
    first = event_ids(settings)[-1]
    assert code == 0 and f"Signed: event {first} " in output, output
    assert run(settings, "checkpoint", **env)[1].startswith(f"Already signed: event {first} ")
    more_activity(settings)
    code, output = run(settings, "checkpoint", **env)
    later = event_ids(settings)[-1]
    assert later > first
    assert code == 0 and f"Signed: event {later} " in output, output
    assert json.loads(outside.read_text())["event_id"] == later
    assert run(settings, "verify", **env)[0] == 0
