"""The personal-data log scan (``tests/pii_scan.py``) finds what it must, and only that."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pii_scan import (
    PersonalValues,
    Scanner,
    collect_from_mapping,
    collect_from_sources,
    collect_from_tree,
    main,
    scan_logs,
)

SCAN = Path(__file__).resolve().parent / "pii_scan.py"

# Planted values: nothing in the suite's logs can hold them, so planting them in stores under
# the session's basetemp (which the session's own scan reads) cannot fail the run.
CHILD = ("C-PLANT-7", "Zebulon", "Quarrington", date(2011, 2, 3))


@pytest.fixture
def stores(tmp_path: Path) -> Path:
    """A SQLite store holding one child, and an extract holding another."""
    root = tmp_path / "stores"
    root.mkdir()
    db = sqlite3.connect(root / "triage.db")
    db.execute("CREATE TABLE children (child_id, given_name, family_name, date_of_birth)")
    db.execute("INSERT INTO children VALUES (?, ?, ?, ?)", (*CHILD[:3], CHILD[3].isoformat()))
    db.execute("CREATE TABLE referrals (referral_id, child_id)")
    db.execute("INSERT INTO referrals VALUES ('R-1', 'C-PLANT-ONLY-REFERRED')")
    db.commit()
    db.close()
    extract = root / "extract"
    extract.mkdir()
    pd.DataFrame(
        {
            "child_id": ["C-PLANT-8"],
            "given_name": ["Mary Ann"],
            "family_name": ["O'Planted"],
            "date_of_birth": pd.to_datetime([date(2013, 12, 25)]),
        }
    ).to_parquet(extract / "children.parquet")
    pd.DataFrame({"child_id": ["C-PLANT-9"], "given_name": ["Sam"]}).to_csv(
        extract / "other.csv", index=False
    )
    return root


def test_collects_every_store_and_extract_under_a_directory(stores: Path) -> None:
    values = collect_from_tree(stores)
    assert values.child_ids == {
        "C-PLANT-7",
        "C-PLANT-8",
        "C-PLANT-9",
        "C-PLANT-ONLY-REFERRED",
    }
    assert values.given_names == {"Zebulon", "Mary Ann", "Sam"}
    assert values.family_names == {"Quarrington", "O'Planted"}
    assert values.dates_of_birth == {date(2011, 2, 3), date(2013, 12, 25)}


def test_collects_literal_payloads_from_sources_and_examples(tmp_path: Path) -> None:
    source = tmp_path / "test_payloads.py"
    source.write_text(
        "body = {'child': {'child_id': 'C-LIT', 'given_name': 'Ada', 'date_of_birth': "
        "'2015-03-01'}}\n"
        "frame = dict(family_name=['Ash', 'Birch'], date_of_birth=[date(2012, 1, 31)])\n"
        "body['child']['given_name'] = 'Ben'\n"
    )
    values = collect_from_sources([source])
    assert values.child_ids == {"C-LIT"}
    assert values.given_names == {"Ada", "Ben"}
    assert values.family_names == {"Ash", "Birch"}
    assert values.dates_of_birth == {date(2015, 3, 1), date(2012, 1, 31)}
    example = collect_from_mapping({"child": {"child_id": "C-EX", "family_name": "Doe"}}, "ex")
    assert (example.child_ids, example.family_names) == ({"C-EX"}, {"Doe"})


LEAKY_LOG = """\
12 345 INFO service.scoring: scored referral R-1 for Zebulon
13 345 INFO service.intake: stored child C-PLANT-7, ok
14 345 ERROR api.errors: unhandled ValueError on POST /v1/children/C-PLANT-8/notes
15 345 WARNING triage.store: date_of_birth=2011-02-03 rejected
16 345 ERROR service.casework: failed
Traceback (most recent call last):
ValueError: Timestamp('2013-12-25 00:00:00') is not a valid date
{"time": "2026-11-26T10:00:00+0000", "logger": "api.app", "message": "Mary Ann O'Planted"}
17 345 DEBUG models.x: born datetime.date(2011, 2, 3), family Quarrington
"""

CLEAN_LOG = """\
12 345 INFO api.access: Sample SAMPLE Samuel sam Sams
13 345 INFO api.access: C-PLANT-77 XC-PLANT-7 C-PLANT-70/x Mary alone Ann alone
{"time": "2011-02-03T10:00:00+0000", "level": "info", "logger": "api.access"}
14 345 INFO alembic: received_at 2013-12-25T00:00:00Z, 2011-02-03 09:30:00, 2011-02-031
15 345 INFO x: datetime(2011, 2, 3, 9, 30) and 12011-02-03 and 3/2/20112
"""


def test_finds_a_planted_name_date_of_birth_and_child_id(stores: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "pytest.log").write_text(LEAKY_LOG)
    findings = scan_logs(logs, collect_from_tree(stores))
    found = [(f.line, f.kind, f.logger) for f in findings]
    assert found == [
        (1, "given name", "service.scoring"),
        (2, "child ID", "service.intake"),
        (3, "child ID", "api.errors"),
        (4, "date of birth", "triage.store"),
        (7, "date of birth", "service.casework"),  # the traceback belongs to the record above it
        (8, "given name", "api.app"),  # a name of two words
        (8, "family name", "api.app"),
        (9, "date of birth", "models.x"),
        (9, "family name", "models.x"),
    ]
    assert all(f.path == logs / "pytest.log" for f in findings)
    report = "\n".join(str(f) for f in findings)
    for value in ("Zebulon", "C-PLANT", "2011-02-03", "Quarrington"):
        assert value not in report  # where and what kind, never the value


def test_ignores_substrings_other_cases_and_timestamps(stores: Path) -> None:
    scanner = Scanner(collect_from_tree(stores))
    for line in CLEAN_LOG.splitlines():
        assert list(scanner.scan_line(line)) == [], line


def test_uk_dates_and_every_child_id_form_count() -> None:
    values = PersonalValues()
    values.add("date_of_birth", ["2014-06-01"], "t")
    values.add("child_id", ["C1"], "t")
    scanner = Scanner(values)
    assert [k for _, k in scanner.scan_line("dob 01/06/2014")] == ["date of birth"]
    assert [k for _, k in scanner.scan_line("dob 2014-06-01 00:00:00+00:00")] == ["date of birth"]
    for text in ('"C1"', "child=C1,", "/v1/x/C1?y", "H1:C1", "C1."):
        assert [k for _, k in scanner.scan_line(text)] == ["child ID"], text
    for text in ("C10", "XC1", "0xC1", "c1"):
        assert list(scanner.scan_line(text)) == [], text


def test_the_command_line_exits_1_on_a_leak_and_0_on_a_clean_log(
    stores: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "server.log").write_text(CLEAN_LOG)
    assert main([str(logs), "--stores", str(stores)]) == 0
    (logs / "server.log").write_text(CLEAN_LOG + LEAKY_LOG)
    assert main([str(logs), "--stores", str(stores)]) == 1


def test_the_capture_handler_keeps_exception_text_for_the_scan(
    stores: Path, tmp_path: Path
) -> None:
    # In a child process: a record planted here would also reach this session's own log.
    logs = tmp_path / "logs"
    code = (
        "import logging, sys\n"
        f"sys.path.insert(0, {str(SCAN.parent)!r})\n"
        "import pii_scan\n"
        f"pii_scan.install_capture(__import__('pathlib').Path({str(logs)!r}))\n"
        "try:\n"
        "    raise ValueError('child ' + 'C-PLANT' + '-7')\n"
        "except ValueError:\n"
        "    logging.getLogger('api.somewhere').exception('failed')\n"
        "logging.getLogger('httpx').info('GET /x?name=Zebulon')\n"  # the client's log: dropped
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    findings = scan_logs(logs, collect_from_tree(stores))
    assert [(f.kind, f.logger) for f in findings] == [("child ID", "api.somewhere")]
    assert main([str(logs), "--stores", str(stores)]) == 1
    command = [sys.executable, str(SCAN), str(logs), "--stores", str(stores)]
    assert subprocess.run(command, capture_output=True).returncode == 1
