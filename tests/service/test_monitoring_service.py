"""The service's monitoring check on its store: the scheduled run, its audit event and stored
summary, the gauges on /metrics, the manager's alert panel, and ``triage monitor``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from access_helpers import sign_in_page
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from store_support import StoreTemplates, sqlite_copy
from typer.testing import CliRunner

from api.app import create_app
from cli.app import app as cli
from models.monitoring import Thresholds
from service.monitoring import MonitorJob, store_document, thresholds_from
from triage.settings import Settings
from triage.store import AuditEventRow, make_engine, session_factory
from triage.store.monitoring import latest_monitoring_report
from triage.store.tables import (
    ChildRow,
    DecisionRow,
    HouseholdRow,
    ReferralRow,
    ScoreRow,
)

MONTHS = 19
PER_MONTH = 150
FIRST = datetime(2025, 4, 1, tzinfo=UTC)
LAST_MONTH = "2026-10"


def _month_start(k: int) -> datetime:
    year, month = divmod(FIRST.month - 1 + k, 12)
    return FIRST.replace(year=FIRST.year + year, month=month + 1)


def _fill(engine: Engine) -> None:
    """Scored referrals month by month; in the last month relatives' concerns jump, a fifth
    go unscored, and most decisions disagree with the band."""
    rng = np.random.default_rng(5)
    with session_factory(engine)() as session:
        session.add(HouseholdRow(household_id="H-1", deprivation_decile=3, synthetic=True))
        session.flush()  # no relationships: the unit of work would not order the inserts
        session.add(
            ChildRow(
                child_id="C-1", household_id="H-1", given_name="Ada", family_name="Example",
                date_of_birth=date(2018, 5, 1), sex="female", ethnicity="white",
                disability=False, deprivation_decile=3, synthetic=True,
            )
        )  # fmt: skip
        session.flush()
        # Referrals first, then what refers to them: batched inserts, not one per row.
        referrals: list[ReferralRow] = []
        dependants: list[ScoreRow | DecisionRow] = []
        for k in range(MONTHS):
            last = k == MONTHS - 1
            for i in range(PER_MONTH):
                referral_id = f"R-{k}-{i}"
                received = _month_start(k) + timedelta(days=float(rng.uniform(0, 27)))
                referrals.append(
                    ReferralRow(
                        referral_id=referral_id, source_system="test",
                        source_referral_id=referral_id, child_id="C-1", household_id="H-1",
                        received_at=received, referrer_type=str(rng.choice(["police", "school"])),
                        concerns=["neglect"], injury_reported=False, injury_sites=[],
                        injury_photographed=False, narrative="", status="decided",
                        synthetic=True,
                    )
                )  # fmt: skip
                if last and i % 5 == 0:
                    continue  # unscored
                relatives = float(rng.poisson(2.5 if last else 0.3))
                count = float(rng.poisson(1.0))
                p = float(1 / (1 + np.exp(-(-2.2 + 0.3 * count))))
                dependants.append(
                    ScoreRow(
                        referral_id=referral_id, scored_at=received, model_version="m/1",
                        probability=p, probability_low=p, probability_high=p, band="Standard",
                        flags=[], reasons=[
                            {"signal": "relative_friend_concerns_365d", "value": relatives},
                            {"signal": "prior_referrals_child_365d", "value": count},
                        ],
                    )
                )  # fmt: skip
                disagree = rng.random() < (0.8 if last else 0.2)
                dependants.append(
                    DecisionRow(
                        referral_id=referral_id, decided_at=received + timedelta(hours=3),
                        decision="assessment",
                        agreement="should_be_higher" if disagree else "agree",
                        reason_codes=[], synthetic=True,
                    )
                )  # fmt: skip
        session.add_all(referrals)
        session.flush()
        session.add_all(dependants)
        session.commit()


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory, store_templates: StoreTemplates) -> Path:
    """A SQLite store at head holding ``_fill``'s referrals, filled once for the module."""
    path = tmp_path_factory.mktemp("monitoring") / "filled.db"
    engine = make_engine(store_templates.sqlite(path))
    try:
        _fill(engine)
    finally:
        engine.dispose()
    return path


@pytest.fixture
def filled(settings: Settings, filled_store: Path) -> Iterator[Engine]:
    """``settings``' store as a copy of the filled one (the checks add to it)."""
    database = make_url(settings.database_url).database
    assert database is not None
    engine = make_engine(sqlite_copy(filled_store, Path(database)))
    yield engine
    engine.dispose()


def _state(settings: Settings, engine: Engine) -> SimpleNamespace:
    sessions = session_factory(engine)
    return SimpleNamespace(
        settings=settings,
        sessions=sessions,
        read_sessions=sessions,
        models=SimpleNamespace(current=None),
    )


def test_the_settings_block_holds_the_monitors_documented_defaults() -> None:
    assert thresholds_from(Settings(var_dir=Path("unused"))) == Thresholds()


def test_the_store_is_read_alike_on_sqlite_and_postgresql(
    migrated_url: str, tmp_path: Path
) -> None:
    settings = Settings(var_dir=tmp_path, database_url=migrated_url)
    engine = make_engine(migrated_url)
    try:
        _fill(engine)
        document = store_document(
            settings=settings, read_sessions=session_factory(engine), scorer=None
        )
    finally:
        engine.dispose()
    assert document is not None
    drifted = {a["subject"] for a in document["alerts"] if a["kind"] == "signal_drift"}
    assert drifted == {"relative_friend_concerns_365d"}
    unscored = document["unscored"][-1]
    assert unscored["unscored"] == PER_MONTH // 5 and unscored["referrals"] == PER_MONTH


def test_the_scheduled_check_stores_its_summary_audits_it_and_waits_its_interval(
    settings: Settings, filled: Engine
) -> None:
    state = _state(settings, filled)
    document = store_document(settings=settings, read_sessions=state.sessions, scorer=None)
    assert document is not None and document["months"][-1] == LAST_MONTH
    kinds = {(a["kind"], a["subject"]) for a in document["alerts"]}
    assert ("signal_drift", "relative_friend_concerns_365d") in kinds
    assert ("unscored", "referrals") in kinds and ("overrides", "decisions") in kinds
    assert all(a["month"] == LAST_MONTH for a in document["alerts"]), document["alerts"]
    assert not [a for a in document["alerts"] if a["subject"] == "prior_referrals_child_365d"]

    job = MonitorJob(state, actor="system")  # type: ignore[arg-type]
    report_id = job.run_once()
    assert report_id is not None
    with session_factory(filled)() as session:
        stored = latest_monitoring_report(session, source="store")
        assert stored is not None and stored.id == report_id
        assert stored.alerts == len(document["alerts"])
        assert stored.summary["alert_counts"]["signal_drift"] >= 1
        event = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "monitoring.checked")
        ).one()
        assert event.entity_id == str(report_id) and event.actor == "system"
    # A later turn within the interval leaves the check to the run just stored.
    hourly = _state(settings.model_copy(update={"monitor_interval_seconds": 3600}), filled)
    assert MonitorJob(hourly, actor="system").run_once() is None  # type: ignore[arg-type]


def test_metrics_and_the_manager_page_show_the_newest_checks_alerts(
    settings: Settings, filled: Engine
) -> None:
    app = create_app(settings, scorer_loader=lambda: None, score_backlog_on_start=False)
    page = TestClient(app, follow_redirects=False, headers={"Accept": "text/html"})
    with page:
        metrics = page.get("/metrics").text
        assert "triage_monitoring_alerts" not in metrics  # no check has run yet
        sign_in_page(page, settings, "manager")
        assert "No monitoring check has run" in page.get("/manager").text
        MonitorJob(_state(settings, filled), actor="system").run_once()  # type: ignore[arg-type]
        metrics = page.get("/metrics").text
        drift = re.search(r'triage_monitoring_alerts\{kind="signal_drift"\} (\d+)', metrics)
        assert drift and int(drift.group(1)) >= 1
        assert 'triage_monitoring_alerts{kind="calibration"} 0.0' in metrics
        psi = re.search(
            r'triage_monitoring_signal_psi\{signal="relative_friend_concerns_365d"\} ([\d.]+)',
            metrics,
        )
        assert psi and float(psi.group(1)) > settings.monitor_psi_alert
        share = re.search(r"triage_monitoring_unscored_share ([\d.]+)", metrics)
        assert share and float(share.group(1)) == pytest.approx(0.2, abs=0.01)
        html = page.get("/manager").text
    panel = html[html.index('id="monitoring-title"') : html.index('id="backlog-title"')]
    assert "alerts</strong>" in panel
    # Words first, the figure in brackets; the reference's exclusive end said as exclusive.
    assert (
        "The values of “relative friend concerns in the last 365 days” have shifted a lot" in panel
    )
    assert "above 0.25 is a large shift)" in panel and LAST_MONTH in panel
    assert "relative_friend_concerns_365d: PSI" not in panel
    assert "up to, not including," in panel
    assert "Ada" not in panel and "R-18-" not in panel


def test_triage_monitor_writes_the_report_audits_it_and_exits_1_on_alerts(
    settings: Settings, filled: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("TRIAGE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/none.db")
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["monitor", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert (out / "report.json").exists() and (out / "report.html").exists()
    assert "relative_friend_concerns_365d" in result.output
    with session_factory(filled)() as session:
        event = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "monitoring.exported")
        ).one()
        assert event.payload["files"] == ["report.json", "report.html"]
    quiet = CliRunner().invoke(cli, ["monitor", "--out", str(out), "--no-fail-on-alert"])
    assert quiet.exit_code == 0, quiet.output


def test_the_app_runs_the_check_at_start_up_when_its_interval_is_set(
    settings: Settings, filled: Engine
) -> None:
    hourly = settings.model_copy(update={"monitor_interval_seconds": 3600})
    app = create_app(hourly, scorer_loader=lambda: None, score_backlog_on_start=False)
    with TestClient(app):
        deadline = time.monotonic() + 60
        stored = None
        while stored is None and time.monotonic() < deadline:
            with session_factory(filled)() as session:
                stored = latest_monitoring_report(session, source="store")
            time.sleep(0.2)
    assert stored is not None and stored.alerts > 0
    with session_factory(filled)() as session:
        actions = session.scalars(
            select(AuditEventRow.actor).where(AuditEventRow.action == "monitoring.checked")
        ).all()
    assert actions == ["system"]  # one run: the next is an hour away
