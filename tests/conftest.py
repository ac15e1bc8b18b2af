"""Shared fixtures: a migrated database per test (SQLite and PostgreSQL) and a tiny extract.

Every session also captures all logs and, at its end, fails if they hold any synthetic
child's name, date of birth or ID used in the run (``tests/pii_scan.py``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pii_scan
import psycopg
import pytest
from chain_support import anchor_new_chain
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from store_support import StoreTemplates

from triage.settings import Settings, get_settings, normalise_database_url
from triage.store import make_engine, session_factory

# An app per test: frozen objects are never collected, so freezing would keep every earlier
# test's app (and the servers tests start inherit this too).
os.environ.setdefault("TRIAGE_GC_FREEZE", "false")
# Fixtures send referrals received on fixed dates in 2026; the age limit on intake would
# refuse them once those dates are a year old. Tests of the limit set it themselves.
os.environ.setdefault("TRIAGE_MAX_REFERRAL_AGE_DAYS", "36500")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TESTS = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """Root logger at DEBUG for the log scan; failure reports still show WARNING and up."""
    pii_scan.set_levels()
    # The service's scheduled monitoring check stays off unless a test turns it on.
    os.environ.setdefault("TRIAGE_MONITOR_INTERVAL_SECONDS", "0")
    # pytest would otherwise print every DEBUG record of a failing test; with a level set it
    # lowers the root logger only to min(current, level), so DEBUG stays for the capture.
    if config.getoption("log_level") is None and config.getini("log_level") in (None, ""):
        config.option.log_level = "WARNING"


@pytest.fixture(scope="session", autouse=True)
def _capture_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every log record of the session, and of the servers tests start, into one directory."""
    basetemp = tmp_path_factory.getbasetemp()
    log_dir = basetemp / "test-logs"
    handler = pii_scan.install_capture(log_dir)
    pii_scan.SESSION.log_dir, pii_scan.SESSION.basetemp = log_dir, basetemp
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(pii_scan.LOG_DIR_ENV, str(log_dir))
        yield log_dir
    pii_scan.remove_capture(handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if the logs hold a personal value used in it (issue 7)."""
    if pii_scan.SESSION.log_dir is None or exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    findings, summary = pii_scan.check_session(sorted(TESTS.rglob("*.py")))  # every package folder
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [summary]
    if findings:
        lines.append("FAILED: personal data in the logs (file:line:column: kind, never the value)")
        lines += pii_scan.report(findings).splitlines()
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if reporter is None:
        print("\n".join(lines))
        return
    reporter.write_line("")  # end the progress line
    reporter.write_sep("-", "personal data in the logs (issue 7)", red=bool(findings))
    for line in lines:
        reporter.write_line(line, red=bool(findings))


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL test server URL; skip when unreachable, but fail under CI=true."""
    url = normalise_database_url(os.environ.get("TRIAGE_TEST_DATABASE_URL", DEFAULT_POSTGRES_URL))
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL unreachable at {make_url(url)!r}: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run, not skip)")
        pytest.skip(reason)
    return url


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a fresh SQLite file, or a private schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'triage.db'}"
        return
    server_url = request.getfixturevalue("postgres_server_url")
    schema = f"t_{uuid.uuid4().hex}"
    admin = make_engine(server_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        # The schema goes; what it held still counts for the log scan at the end.
        pii_scan.SESSION.values.update(pii_scan.snapshot_schema(admin, schema))
        with admin.begin() as connection:
            # A connection leaked by a failing test must not hang the suite.
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def store_templates(tmp_path_factory: pytest.TempPathFactory) -> StoreTemplates:
    """Stores migrated once per run, copied for each test (tests/store_support.py)."""
    return StoreTemplates(tmp_path_factory.mktemp("store-templates"))


@pytest.fixture
def settings(tmp_path: Path, store_templates: StoreTemplates) -> Settings:
    """Service settings on a fresh, migrated SQLite database (a module may define its own)."""
    url = store_templates.sqlite(tmp_path / "triage.db")
    settings = Settings(
        var_dir=tmp_path, database_url=url, mlflow_tracking_uri=f"sqlite:///{tmp_path}/ml.db"
    )
    anchor_new_chain(settings)
    return settings


@pytest.fixture
def migrated_url(
    database_url: str, store_templates: StoreTemplates, request: pytest.FixtureRequest
) -> str:
    """``database_url`` with the schema at head: a copy of a store migrated once per run."""
    server_url = None
    if not database_url.startswith("sqlite"):
        server_url = request.getfixturevalue("postgres_server_url")
    store_templates.migrated(database_url, server_url)
    return database_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    """An engine on a migrated database."""
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on a migrated database; uncommitted work is rolled back afterwards."""
    with session_factory(engine)() as session:
        yield session


@pytest.fixture(scope="session")
def small_world_extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic extract on disk (8,000 referrals), shared by the model tests."""
    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    directory = tmp_path_factory.mktemp("small-world")
    write_extract(generate_world(WorldParams(n_referrals=8_000, seed=11)), directory)
    return directory


@pytest.fixture(scope="session")
def small_world_data(small_world_extract: Path):
    """Its training table."""
    from models.dataset import load_training_data

    return load_training_data(small_world_extract)


@pytest.fixture(scope="session")
def scenario_world_data(tmp_path_factory: pytest.TempPathFactory):
    """A world of 30,000 referrals for the scenario suite: enough for stable bands."""
    from models.dataset import load_training_data
    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    directory = tmp_path_factory.mktemp("scenario-world")
    write_extract(generate_world(WorldParams(n_referrals=30_000, seed=5)), directory)
    return load_training_data(directory)


@pytest.fixture(scope="session")
def fitted_families(small_world_data):
    """Both families fitted on its train split and calibrated on validation, with X and y."""
    from models.families import Challenger, Scorecard
    from models.splits import TEST, TRAIN, VALIDATION

    data = small_world_data
    parts = (TRAIN, VALIDATION, TEST)
    X = {p: data.features.loc[data.part(p)].to_numpy(dtype=float) for p in parts}
    y = {p: data.label.loc[data.part(p)].to_numpy(dtype=int) for p in parts}
    groups = data.household_id.loc[data.part(TRAIN)].to_numpy()
    signals = tuple(data.features.columns)
    scorecard = Scorecard.for_signals(signals).fit(
        X[TRAIN], y[TRAIN], X[VALIDATION], y[VALIDATION], groups=groups, n_boot=3
    )
    challenger = Challenger(signals).fit(
        X[TRAIN], y[TRAIN], X[VALIDATION], y[VALIDATION], groups=groups, n_boot=2
    )
    return scorecard, challenger, X, y


def _utc(*args: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


@pytest.fixture
def extract_frames() -> dict[str, pd.DataFrame]:
    """A tiny, valid extract: 3 children in 2 households, 4 referrals, 5 events, 2 decisions."""
    children = pd.DataFrame(
        {
            "child_id": ["C1", "C2", "C3"],
            "household_id": ["H1", "H1", "H2"],
            "given_name": ["Ada", "Ben", "Cal"],
            "family_name": ["Ash", "Ash", "Birch"],
            "date_of_birth": pd.to_datetime(
                [date(2015, 3, 1), date(2018, 7, 9), date(2012, 1, 31)]
            ),
            "sex": ["female", "male", "unknown"],
            "ethnicity": ["white", "white", "black"],
            "disability": [False, True, False],
            "deprivation_decile": pd.array([2, 2, None], dtype="Int64"),
            "synthetic": [True, True, True],
        }
    )
    referrals = pd.DataFrame(
        {
            "referral_id": ["R1", "R2", "R3", "R4"],
            "source_system": ["mash"] * 4,
            "source_referral_id": ["m-1", "m-2", "m-3", "m-4"],
            "child_id": ["C1", "C2", "C3", "C1"],
            "household_id": ["H1", "H1", "H2", "H1"],
            "received_at": pd.Series(
                [_utc(2024, 1, 5, 9), _utc(2024, 2, 1, 14), _utc(2024, 2, 3, 8), _utc(2024, 3, 1)]
            ),
            "referrer_type": ["school", "health", "police", "individual"],
            "referrer_relationship": [None, "gp", None, "neighbour"],
            "referrer_id": ["S-1", None, "P-9", None],
            "concerns": ["neglect", "neglect;domestic_abuse", "physical_abuse", "other"],
            "injury_reported": [False, False, True, False],
            "injury_sites": ["", "", "head_face_neck;limbs", ""],
            "injury_photographed": [False, False, True, False],
            "narrative": ["Arrives hungry.", "Missed appointments.", "Bruising seen.", "Noise."],
            "synthetic": [True] * 4,
        }
    )
    events = pd.DataFrame(
        {
            "event_id": ["E1", "E2", "E3", "E4", "E5"],
            "source_system": ["police", "health", "housing", "school", "police"],
            "source_event_id": ["p-1", "h-1", "ho-1", "s-1", "p-2"],
            "child_id": ["C1", "C2", None, "C3", None],
            "household_id": ["H1", "H1", "H1", "H2", "H1"],
            "occurred_at": pd.Series(
                [
                    _utc(2023, 11, 2),
                    _utc(2023, 12, 24, 23, 30),
                    _utc(2024, 1, 20),
                    _utc(2024, 1, 22),
                    _utc(2024, 2, 20),
                ]
            ),
            "agency": ["police", "health", "housing", "school", "police"],
            "kind": [
                "domestic_abuse_incident",
                "ed_attendance",
                "eviction",
                "absence_concern",
                "adult_violence_offence",
            ],
            "attributes": [json.dumps({"severity": "high"}), "{}", "{}", "{}", "{}"],
            "synthetic": [True] * 5,
        }
    )
    decisions = pd.DataFrame(
        {
            "referral_id": ["R1", "R3"],
            "decided_at": pd.Series([_utc(2024, 1, 5, 17), _utc(2024, 2, 3, 12)]),
            "decision": ["early_help", "strategy_discussion"],
            "synthetic": [True, True],
        }
    )
    outcomes = pd.DataFrame(
        {
            "referral_id": ["R1", "R3"],
            "highest_level": ["child_in_need", "cp_plan"],
            "investigated_12m": [False, True],
            "significant_harm_12m": [False, True],
            "cp_category": [None, "physical_abuse"],
            "synthetic": [True, True],
        }
    )
    truth = pd.DataFrame({"referral_id": ["R1", "R2", "R3", "R4"], "harm_12m": [0, 0, 1, 0]})
    return {
        "children": children,
        "referrals": referrals,
        "events": events,
        "decisions": decisions,
        "outcomes": outcomes,
        "truth": truth,
    }


WriteExtract = Callable[..., Path]


@pytest.fixture
def write_extract(tmp_path: Path) -> WriteExtract:
    """Return ``write(frames, fmt="parquet")`` that writes an extract directory and returns it."""
    counter = iter(range(1_000_000))

    def write(frames: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
        directory = tmp_path / f"extract-{next(counter)}"
        directory.mkdir()
        for table, frame in frames.items():
            if fmt == "parquet":
                frame.to_parquet(directory / f"{table}.parquet", index=False)
            else:
                frame.to_csv(directory / f"{table}.csv", index=False)
        (directory / "manifest.json").write_text(json.dumps({"tables": sorted(frames)}))
        return directory

    return write


@pytest.fixture
def tiny_extract(extract_frames: dict[str, pd.DataFrame], write_extract: WriteExtract) -> Path:
    """The tiny extract written as Parquet."""
    return write_extract(extract_frames)
