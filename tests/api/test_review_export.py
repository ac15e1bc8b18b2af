"""The practice-review chronology: every item of a child's (or household's) history with the
audit entries behind it, hashes that match the log, the command line and the managers' page,
roles, precise refusals, and the export's own audit entry."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import getpass
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pii_scan
import pytest
from access_helpers import csrf_of, sign_in_page, user_headers
from api_support import (  # noqa: F401  (fixtures by name)
    Switch,
    admin,
    client,
    make_client,
    referral,
    scorer,
)
from fastapi.testclient import TestClient
from sqlalchemy import select
from store_support import SchemaDump, StoreTemplates, create_schema, drop_schema, schema_url
from typer.testing import CliRunner

from api.app import create_app
from cli.app import app as cli_app
from models.scorer import Scorer
from service import review_export
from triage.settings import Settings, get_settings
from triage.store import AuditEventRow, make_engine, session_factory
from triage.store.auditlog import chain_hash, event_document, verify_chain
from triage.store.tables import DecisionRow, ScoreRow

CHILD = "C-1042"
HOUSEHOLD = "H-311"
SIBLING = "C-2077"
RATIONALE = "Relative's photographs seen; the band under-reads the injury."
NOW = datetime.now(UTC)


def _settings(database_url: str, var_dir: Path) -> Settings:
    return Settings(
        var_dir=var_dir,
        database_url=database_url,
        mlflow_tracking_uri=f"sqlite:///{var_dir}/ml.db",
        audit_checkpoint_seconds=0,
    )


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path: Path,
    store_templates: StoreTemplates,
    built_worlds: BuiltWorlds,
) -> Settings:
    """The service on SQLite and on PostgreSQL (a private schema), migrated; for a test that
    asks for the ``world``, a fresh copy of the store (and var directory) it was built in."""
    server_url = None
    if not database_url.startswith("sqlite"):
        server_url = request.getfixturevalue("postgres_server_url")
    if "world" in request.fixturenames:
        built_worlds.copy_into(database_url, tmp_path, server_url)
    else:
        store_templates.migrated(database_url, server_url)
    return _settings(database_url, tmp_path)


def _ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _band(settings: Settings, referral_id: str) -> str:
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            query = select(ScoreRow.band).where(ScoreRow.referral_id == referral_id)
            return str(session.scalars(query.order_by(ScoreRow.id.desc())).first())
    finally:
        engine.dispose()


def _build_world(client: TestClient, settings: Settings) -> dict[str, str]:
    """A child with two scored referrals: the first decided against the band (an override,
    with a rationale), the second disputed, checked with an agency that replied, discussed at
    a strategy discussion, a fact recorded, then decided; and a sibling with one referral."""
    first = _ok(client.post("/v1/referrals", json=referral(received_at=NOW - timedelta(days=30))))
    second = _ok(client.post("/v1/referrals", json=referral(received_at=NOW - timedelta(hours=3))))
    sibling = referral(child_id=SIBLING, received_at=NOW - timedelta(days=10))
    sibling_id = _ok(client.post("/v1/referrals", json=sibling))["referral_id"]
    first_id, second_id = first["referral_id"], second["referral_id"]
    # Whatever the band, a priority on the other side of it: the decision overrides the band.
    priority = "lower" if _band(settings, first_id) == "Review first" else "review_first"
    decided = client.post(
        f"/v1/referrals/{first_id}/decisions",
        json={"decision": "assessment", "priority": priority, "rationale": RATIONALE},
    )
    assert _ok(decided)["agreement"] != "agree"
    _ok(
        client.post(
            f"/v1/referrals/{second_id}/disputes",
            json={"record_id": first_id, "reason": "another child of the same name"},
        )
    )
    request = _ok(
        client.post(
            f"/v1/referrals/{second_id}/checks",
            json={"agency": "gp", "question": "Is the child registered and seen recently?"},
        )
    )
    _ok(
        client.post(
            f"/v1/checks/{request['request_id']}/reply",
            json={"outcome": "known_with_concerns", "summary": "Missed two immunisations."},
        ),
        200,
    )
    strategy = {
        "held_at": (NOW - timedelta(hours=1)).isoformat(),
        "attendees": [{"agency": "social_care"}, {"agency": "police"}, {"agency": "health"}],
        "outcome": "section_47_enquiry",
        "summary": "Joint visit tomorrow.",
    }
    _ok(client.post(f"/v1/referrals/{second_id}/strategy-discussions", json=strategy))
    facts = {"facts": [{"kind": "child_seen", "value": "yes"}]}
    _ok(client.post(f"/v1/referrals/{second_id}/facts", json=facts))
    # The second decision agrees with its band: one override in the child's history.
    agreeing = {"Review first": "review_first", "Elevated": "elevated", "Standard": "standard"}
    same = agreeing.get(_band(settings, second_id), "lower")
    body = {"decision": "strategy_discussion", "priority": same}
    agreed = _ok(client.post(f"/v1/referrals/{second_id}/decisions", json=body))
    assert agreed["agreement"] == "agree"
    # The sibling's physical-abuse referral is closed unseen: held for a manager's sign-off,
    # which another manager gives; then a manager reopens it.
    closing = {"decision": "no_further_action", "priority": "lower", "rationale": "Seen at school."}
    held = _ok(client.post(f"/v1/referrals/{sibling_id}/decisions", json=closing))
    assert held["sign_off"] is not None
    signed = client.post(
        f"/v1/referrals/{sibling_id}/sign-off",
        json={"verdict": "sign_off"},
        headers=user_headers(settings, "manager"),
    )
    _ok(signed, 200)
    _ok(client.post(f"/v1/referrals/{sibling_id}/reopen", json={"reason": "new information"}), 200)
    return {"first": first_id, "second": second_id, "sibling": sibling_id}


class BuiltWorlds:
    """The world built once per backend for the module; each test gets its own copy."""

    def __init__(self, directory: Path, scorer: Scorer, templates: StoreTemplates) -> None:
        self.directory, self.scorer, self.templates = directory, scorer, templates
        self.ids: dict[str, dict[str, str]] = {}
        self.dumps: dict[str, SchemaDump] = {}
        self.schemas: list[tuple[str, str]] = []

    def _build(self, backend: str, server_url: str | None) -> None:
        var_dir = self.directory / backend
        var_dir.mkdir()
        if server_url is None:
            url = self.templates.sqlite(var_dir / "triage.db")
        else:
            schema = f"t_world_{uuid.uuid4().hex}"
            create_schema(server_url, schema)
            self.schemas.append((server_url, schema))
            url = schema_url(server_url, schema)
            self.templates.postgres(url, server_url)
        settings = _settings(url, var_dir)
        app = create_app(settings, scorer_loader=Switch(self.scorer), score_backlog_on_start=False)
        headers = user_headers(settings, "admin")
        with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
            self.ids[backend] = _build_world(client, settings)
        if server_url is not None:
            self.dumps[backend] = SchemaDump(server_url, schema)

    def copy_into(self, database_url: str, var_dir: Path, server_url: str | None) -> None:
        """Make ``var_dir`` and the empty store at ``database_url`` a copy of the world's."""
        backend = "sqlite" if server_url is None else "postgres"
        if backend not in self.ids:
            self._build(backend, server_url)
        # The audit key and checkpoint, the secret key (and, on SQLite, the store itself).
        shutil.copytree(self.directory / backend, var_dir, dirs_exist_ok=True)
        if server_url is not None:
            self.dumps[backend].restore(database_url)

    def close(self) -> None:
        """Drop the PostgreSQL schemas, keeping what they held for the log scan."""
        for server_url, schema in self.schemas:
            admin = make_engine(server_url)
            try:
                pii_scan.SESSION.values.update(pii_scan.snapshot_schema(admin, schema))
            finally:
                admin.dispose()
            drop_schema(server_url, schema)


@pytest.fixture(scope="module")
def built_worlds(
    tmp_path_factory: pytest.TempPathFactory,
    scorer: Scorer,
    store_templates: StoreTemplates,
) -> Iterator[BuiltWorlds]:
    """The world of ``_build_world``, built on first use per backend and copied per test:
    the tests add to it (exports, users, records), so none may see another's changes."""
    worlds = BuiltWorlds(tmp_path_factory.mktemp("review-world"), scorer, store_templates)
    yield worlds
    worlds.close()


@pytest.fixture
def world(settings: Settings, built_worlds: BuiltWorlds) -> dict[str, str]:
    """The ids of the world's referrals; ``settings`` holds the copy of the world."""
    backend = "sqlite" if settings.database_url.startswith("sqlite") else "postgres"
    return built_worlds.ids[backend]


def _document(settings: Settings, subject: review_export.Subject) -> dict[str, Any]:
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            return review_export.build(
                session, subject=subject, reason="CSPR 2026/14", generated_by="U-test"
            )
    finally:
        engine.dispose()


def _items(document: dict[str, Any], referral_id: str) -> list[dict[str, Any]]:
    for child in document["children"]:
        for r in child["referrals"]:
            if r["referral_id"] == referral_id:
                return list(r["timeline"])
    raise AssertionError(f"{referral_id} is not in the export")


def _stored_events(settings: Settings) -> dict[int, AuditEventRow]:
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            assert verify_chain(session).ok
            return {row.id: row for row in session.scalars(select(AuditEventRow))}
    finally:
        engine.dispose()


def test_the_chronology_holds_every_item_with_the_audit_entries_behind_it(
    settings: Settings, world: dict[str, str]
) -> None:
    document = _document(settings, review_export.subject_of(child=CHILD, household=None))
    assert document["format"] == review_export.FORMAT and document["version"] == 1
    assert document["counts"]["referrals"] == 2 and document["counts"]["overrides"] == 1
    first, second = _items(document, world["first"]), _items(document, world["second"])
    assert [i["at"] for i in second] == sorted(i["at"] for i in second)
    behind = {
        "referral": "referral.received",
        "score": "referral.scored",
        "decision": "referral.decided",
        "dispute": "referral.disputed",
        "check_request": "check.requested",
        "check_reply": "check.replied",
        "strategy_discussion": "strategy.recorded",
        "fact": "facts.recorded",
    }
    kinds = {i["kind"] for i in first + second}
    assert set(behind) <= kinds
    for item in first + second:
        if item["kind"] in behind:
            assert [e["action"] for e in item["audit"]] == [behind[item["kind"]]], item["kind"]
    # Exactly what was stored: the score's reasons, model and band; the override's rationale.
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        scores = {s.id: s for s in session.scalars(select(ScoreRow))}
        decision = session.scalars(
            select(DecisionRow).where(DecisionRow.referral_id == world["first"])
        ).one()
    engine.dispose()
    for item in (i for i in first + second if i["kind"] == "score"):
        row = scores[item["record"]["id"]]
        assert item["record"]["reasons"] == row.reasons and item["record"]["band"] == row.band
        assert item["record"]["model_version"] == "test-model/1"
        assert item["audit"][0]["payload"]["score_id"] == row.id
        assert len(item["record"]["reasons_in_words"]) == len(row.reasons)
    override = next(i for i in first if i["kind"] == "decision")
    assert override["record"]["override"] is True
    assert override["record"]["rationale"] == RATIONALE == decision.rationale
    assert override["record"]["agreement"] == decision.agreement != "agree"
    # Every entry is the log's own: same hash, and the hash recomputes from its contents.
    stored = _stored_events(settings)
    entries = [e for i in first + second for e in i["audit"]]
    for child in document["children"]:
        for r in child["referrals"]:
            entries += r["other_audit"]
    assert len(entries) == document["counts"]["audit_entries"] >= 10
    for entry in entries:
        event = stored[entry["sequence"]]
        assert (entry["hash"], entry["prev_hash"], entry["action"]) == (
            event.hash,
            event.prev_hash,
            event.action,
        )
        document_fields = {k: entry[k] for k in ("occurred_at", "actor", "action", "entity_type")}
        recomputed = chain_hash(
            entry["prev_hash"],
            event_document(
                **document_fields,
                entity_id=entry["entity_id"],
                model_version=entry["model_version"],
                payload=entry["payload"],
            ),
        )
        assert recomputed == entry["hash"] and entry["hash_matches_contents"]
    # Views are audit entries about the referral too, kept beside the chronology.
    assert document["audit_chain"]["head_sequence"] == max(stored)


def test_the_json_gives_utc_times_and_the_html_reads_in_words(
    settings: Settings, world: dict[str, str]
) -> None:
    from service.review_html import review_file_html

    document = _document(settings, review_export.subject_of(child=CHILD, household=None))
    parsed = json.loads(review_export.to_json(document))
    assert parsed["generated_at"].endswith("+00:00")
    first = _items(parsed, world["first"])
    assert all(item["at"].endswith("+00:00") for item in first)
    html = review_file_html(document)
    assert "<table" in html and f"Referral <code>{world['first']}</code>" in html
    assert RATIONALE.replace("'", "&#39;") in html
    reason_words = next(i for i in first if i["kind"] == "score")["record"]["reasons_in_words"]
    assert reason_words[0] in html.replace("&#39;", "'")
    assert "<link" not in html and "<script" not in html  # one self-contained, printable file


def test_a_household_export_covers_every_child_ever_in_it(
    settings: Settings, world: dict[str, str], client: TestClient
) -> None:
    elsewhere = referral(child_id="C-9001", household_id="H-999", received_at=NOW)
    _ok(client.post("/v1/referrals", json=elsewhere))
    document = _document(settings, review_export.subject_of(child=None, household=HOUSEHOLD))
    assert [c["child"]["child_id"] for c in document["children"]] == [CHILD, SIBLING]
    assert document["counts"]["referrals"] == 3
    sibling = _items(document, world["sibling"])
    assert [i["kind"] for i in sibling if i["kind"] != "score"] == [
        "referral",
        "decision",
        "sign_off",
        "reopened",
    ]
    sign_off = next(i for i in sibling if i["kind"] == "sign_off")
    assert sign_off["record"]["status"] == "signed_off"
    assert [e["action"] for e in sign_off["audit"]] == ["signoff.requested", "signoff.signed_off"]
    assert sign_off["audit"][0]["actor"] != sign_off["audit"][1]["actor"]
    assert sign_off["audit"][1]["actor_roles_now"] == ["manager"]
    reopened = next(i for i in sibling if i["kind"] == "reopened")
    assert [e["action"] for e in reopened["audit"]] == ["referral.reopened"]


@pytest.mark.parametrize(
    ("child", "household", "field"),
    [("C-1", "H-1", "household"), (None, None, "child"), ("C 1;", None, "child")],
)
def test_a_subject_is_one_child_or_one_household(
    child: str | None, household: str | None, field: str
) -> None:
    with pytest.raises(review_export.Invalid) as refused:
        review_export.subject_of(child=child, household=household)
    assert [e["field"] for e in refused.value.errors or []] == [field]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A command-line runner on the test database."""
    monkeypatch.setenv("TRIAGE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(settings.var_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _exports(settings: Settings) -> list[AuditEventRow]:
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            query = select(AuditEventRow).where(AuditEventRow.action == review_export.EXPORT_ACTION)
            return list(session.scalars(query.order_by(AuditEventRow.id)))
    finally:
        engine.dispose()


def test_the_command_writes_json_and_html_and_is_audited(
    cli: CliRunner, settings: Settings, world: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "review"
    args = ["review-export", "--child", CHILD, "--out", str(out), "--reason", "CSPR 2026/14"]
    run = cli.invoke(cli_app, args)
    assert run.exit_code == 0, run.output
    document = json.loads((out / f"review-{CHILD}.json").read_text(encoding="utf-8"))
    assert document["subject"] == {"kind": "child", "id": CHILD}
    assert document["reason"] == "CSPR 2026/14"
    assert {r["referral_id"] for r in document["children"][0]["referrals"]} == {
        world["first"],
        world["second"],
    }
    assert (out / f"review-{CHILD}.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    [export] = _exports(settings)
    person = f"cli:{getpass.getuser()}"  # who ran it, as `triage retention apply` records
    assert (export.actor, export.entity_type, export.entity_id) == (person, "child", CHILD)
    assert document["generated_by"] == person
    assert export.payload["reason"] == "CSPR 2026/14" and export.payload["channel"] == "cli"
    assert export.payload["files"] == [f"review-{CHILD}.json", f"review-{CHILD}.html"]
    # A second export lists the first among earlier exports.
    again_args = ["review-export", "--household", HOUSEHOLD, "--out", str(out), "--reason", "R"]
    run = cli.invoke(cli_app, again_args)
    assert run.exit_code == 0, run.output
    again = json.loads((out / f"review-{HOUSEHOLD}.json").read_text(encoding="utf-8"))
    assert len(again["children"]) == 2 and len(_exports(settings)) == 2
    [earlier] = again["earlier_exports"]
    assert (earlier["action"], earlier["entity_id"], earlier["payload"]["reason"]) == (
        review_export.EXPORT_ACTION,
        CHILD,
        "CSPR 2026/14",
    )
    assert earlier["hash"] == export.hash


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--child", "C-nobody"], "--child: no child has this id"),
        (["--household", "H-nowhere"], "--household: no household has this id"),
        (["--child", CHILD, "--household", HOUSEHOLD], "--household: give a child or a household"),
        ([], "--child: give a child id or a household id"),
    ],
)
def test_the_command_refuses_an_unknown_or_ambiguous_subject(
    cli: CliRunner, settings: Settings, tmp_path: Path, args: list[str], says: str
) -> None:
    out = ["--out", str(tmp_path / "out"), "--reason", "CSPR"]
    run = cli.invoke(cli_app, ["review-export", *out, *args])
    assert run.exit_code == 2
    assert says in " ".join(run.output.split())
    assert not (tmp_path / "out").exists() and _exports(settings) == []


@pytest.mark.parametrize(
    ("reason", "says"),
    [(None, "--reason"), ("", "--reason: name the review"), ("   ", "--reason: name the review")],
)
def test_the_command_needs_the_review_named(
    cli: CliRunner,
    settings: Settings,
    world: dict[str, str],
    tmp_path: Path,
    reason: str | None,
    says: str,
) -> None:
    args = ["review-export", "--child", CHILD, "--out", str(tmp_path / "out")]
    run = cli.invoke(cli_app, args + ([] if reason is None else ["--reason", reason]))
    assert run.exit_code == 2, run.output
    assert says in " ".join(run.output.split())
    assert not (tmp_path / "out").exists() and _exports(settings) == []


@pytest.fixture
def page(client: TestClient) -> TestClient:
    """A browser-like client (cookies, no bearer header) on the same app."""
    return TestClient(client.app, follow_redirects=False, raise_server_exceptions=False)


@pytest.mark.parametrize("role", ["practitioner", "researcher"])
def test_practitioners_and_researchers_cannot_open_the_page(
    page: TestClient, settings: Settings, world: dict[str, str], role: str
) -> None:
    sign_in_page(page, settings, role)
    forbidden = page.get("/practice-review")
    assert forbidden.status_code == 403
    # The session's own token where the page carries one: the role, not the token, refuses.
    token = csrf_of(forbidden.text) if 'name="csrf_token"' in forbidden.text else "none"
    form = {"kind": "child", "id": CHILD, "reason": "CSPR", "csrf_token": token}
    assert page.post("/practice-review", data=form).status_code == 403
    download = form | {"format": "json"}
    assert page.post("/practice-review/download", data=download).status_code == 403
    assert _exports(settings) == []


def test_a_page_without_a_session_asks_to_sign_in(page: TestClient) -> None:
    response = page.get("/practice-review")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def _shown(page: TestClient, reason: str = "CSPR 2026/14", **fields: str) -> Any:
    """The chronology as the form posts it, with the page's CSRF token."""
    token = csrf_of(page.get("/practice-review").text)
    form = {"kind": "child", "id": CHILD, "reason": reason, "csrf_token": token} | fields
    return page.post("/practice-review", data=form)


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_a_manager_sees_the_chronology_and_downloads_it_each_time_audited(
    page: TestClient, settings: Settings, world: dict[str, str], role: str
) -> None:
    sign_in_page(page, settings, role)
    form = page.get("/practice-review")
    assert form.status_code == 200 and 'name="reason"' in form.text
    assert '<form method="post" action="/practice-review"' in form.text
    shown = _shown(page)
    assert shown.status_code == 200
    assert f"Referral <code>{world['second']}</code>" in shown.text
    # The downloads are forms posting the id, the review and the token: no id in any URL.
    assert '<form method="post" action="/practice-review/download"' in shown.text
    assert "/practice-review/download?" not in shown.text and "?id=" not in shown.text
    assert f'name="id" value="{CHILD}"' in shown.text
    download = {"kind": "child", "id": CHILD, "reason": "CSPR 2026/14"}
    download |= {"csrf_token": csrf_of(shown.text)}
    as_json = page.post("/practice-review/download", data=download | {"format": "json"})
    assert as_json.status_code == 200
    assert as_json.headers["content-disposition"] == f'attachment; filename="review-{CHILD}.json"'
    assert as_json.json()["counts"]["referrals"] == 2
    as_html = page.post("/practice-review/download", data=download | {"format": "html"})
    assert as_html.status_code == 200 and as_html.text.startswith("<!doctype html>")
    exports = _exports(settings)
    assert [e.payload["channel"] for e in exports] == ["page", "page_download", "page_download"]
    assert {(e.entity_type, e.entity_id, e.payload["reason"]) for e in exports} == {
        ("child", CHILD, "CSPR 2026/14")
    }
    assert all(e.actor.startswith("U-") for e in exports)


def test_a_get_exports_nothing_and_a_cross_site_form_is_refused(
    page: TestClient, settings: Settings, world: dict[str, str]
) -> None:
    sign_in_page(page, settings, "manager")
    # A link, as another site could send a signed-in manager: the empty form, nothing audited.
    query = {"kind": "child", "id": CHILD, "reason": "chosen by someone else"}
    linked = page.get("/practice-review", params=query)
    assert linked.status_code == 200 and "Referral <code>" not in linked.text
    assert "chosen by someone else" not in linked.text
    assert f'value="{CHILD}"' not in linked.text  # the form is empty: no id carried over
    assert page.get("/practice-review/download", params=query | {"format": "json"}).status_code in (
        404,
        405,
    )
    # A form posted from elsewhere carries no (or the wrong) token: refused, nothing audited.
    for token in ("", "not-the-sessions-token"):
        data = query | {"csrf_token": token}
        refused = page.post("/practice-review", data=data)
        assert refused.status_code == 403 and "This form has expired" in refused.text
        download = page.post("/practice-review/download", data=data | {"format": "json"})
        assert download.status_code == 403
    assert _exports(settings) == []


def test_the_page_and_the_html_file_give_reasons_in_words_not_log_odds(
    page: TestClient, settings: Settings, world: dict[str, str]
) -> None:
    from service.review_html import review_file_html

    sign_in_page(page, settings, "manager")
    shown = _shown(page).text
    document = _document(settings, review_export.subject_of(child=CHILD, household=None))
    html = review_file_html(document)
    scores = [i["record"] for i in _items(document, world["first"]) if i["kind"] == "score"]
    assert scores and scores[0]["reasons"]
    checked = 0
    for text in (shown, html):
        assert "log-odds" not in text
        assert "the JSON file holds each reason's exact stored contribution" in text
        for record in scores:
            for reason, words in zip(record["reasons"], record["reasons_in_words"], strict=True):
                assert words in text.replace("&#39;", "'")
                assert f"contribution {reason['contribution']}" not in text
                # Nowhere: not beside the reason, nor in a dispute's before/after or a payload
                # (a figure short enough to occur by chance, such as 0.0, proves nothing).
                figure = str(reason["contribution"])
                assert len(figure) < 8 or figure not in text
                checked += len(figure) >= 8
    assert checked  # The JSON file keeps the exact stored values.
    parsed = json.loads(review_export.to_json(document))
    stored = [i["record"] for i in _items(parsed, world["first"]) if i["kind"] == "score"]
    assert [r["contribution"] for r in stored[0]["reasons"]] == [
        r["contribution"] for r in scores[0]["reasons"]
    ]


def test_the_page_names_the_field_at_fault(
    page: TestClient, settings: Settings, world: dict[str, str]
) -> None:
    sign_in_page(page, settings, "manager")
    unknown = _shown(page, "R", kind="household", id="H-0")
    assert unknown.status_code == 404 and "No household has this id" in unknown.text
    assert 'id="household"' in unknown.text and 'aria-invalid="true"' in unknown.text
    unnamed = _shown(page, "")
    assert unnamed.status_code == 422 and "Name the review this export is for" in unnamed.text
    token = csrf_of(unnamed.text)
    bad = page.post(
        "/practice-review/download",
        data={"id": CHILD, "reason": "R", "format": "x", "csrf_token": token},
    )
    assert bad.status_code == 422 and "Choose json or html" in bad.text
    assert _exports(settings) == []


def test_an_api_token_alone_does_not_open_the_page(
    client: TestClient, settings: Settings, world: dict[str, str]
) -> None:
    headers = user_headers(settings, "manager")
    response = TestClient(client.app).get(
        "/practice-review", headers=headers, follow_redirects=False
    )
    assert response.status_code == 303  # pages use the signed-in session, not bearer tokens


def test_identity_tasks_about_the_child_are_in_the_chronology_with_their_entries(
    settings: Settings, world: dict[str, str]
) -> None:
    from triage.store import add_audit_event, insert_identity_record_if_new, insert_identity_task

    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        insert_identity_record_if_new(
            session,
            record={
                "record_id": "IDR-school-1",
                "source_system": "school-mis",
                "source_person_id": "S-88",
                "given_name": "Sam",
                "family_name": "Doe",
                "date_of_birth": datetime(2014, 6, 1).date(),
                "sex": "male",
                "is_child": True,
                "first_seen_at": NOW,
                "person_id": None,
                "resolution": "possible_match",
                "match_probability": 0.81,
            },
        )
        insert_identity_task(
            session,
            task={
                "task_id": "IDT-1",
                "record_id": "IDR-school-1",
                "referral_id": None,
                "candidate_person_id": CHILD,
                "match_probability": 0.81,
                "evidence": {"date_of_birth": "same"},
                "status": "rejected",
                "created_at": NOW,
            },
        )
        add_audit_event(
            session,
            actor="U-someone",
            action="identity.task_rejected",
            entity_type="identity_task",
            entity_id="IDT-1",
            payload={"candidate_person_id": CHILD, "match_probability": 0.81},
        )
        session.commit()
    engine.dispose()
    document = _document(settings, review_export.subject_of(child=CHILD, household=None))
    identity = document["children"][0]["identity"]
    [task] = [i for i in identity if i["kind"] == "identity_task"]
    assert task["record"]["status"] == "rejected"
    assert [e["action"] for e in task["audit"]] == ["identity.task_rejected"]
    # Each referral's own record of the child, with the receipt that resolved it.
    linked = {i["record"]["record_id"]: i for i in identity if i["kind"] == "identity_record"}
    assert set(linked) == {f"IDR-{world['first']}", f"IDR-{world['second']}"}
    for item in linked.values():
        assert [e["action"] for e in item["audit"]] == ["referral.received"]
    timelines = [i for r in document["children"][0]["referrals"] for i in r["timeline"]]
    other = [e for r in document["children"][0]["referrals"] for e in r["other_audit"]]
    assert document["counts"]["audit_entries"] == 1 + len(other) + sum(
        len(i["audit"]) for i in timelines
    )
