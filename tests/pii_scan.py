"""Check that the logs of a test run hold none of the synthetic children's personal values.

Issue 7 asks that "after a full test run, the application's logs contain none of the synthetic
names, dates of birth or child IDs used". ``tests/conftest.py`` wires this module into every
pytest session:

1. **Capture.** A handler on the root logger (level DEBUG) writes every record of the test
   process, with its exception text and traceback, to ``<basetemp>/test-logs/pytest.log``.
   Servers that tests start in subprocesses write their stdout and stderr beside it (the
   directory is in ``$TRIAGE_TEST_LOG_DIR``), as the service configures its logs in
   production (JSON lines, INFO). The harness's own clients stay at WARNING: the HTTP
   client (``httpx``, ``httpcore``) logs the URLs tests request, query strings included,
   and the notebook client (``traitlets``) logs every output a notebook displays; those
   are the tests' records, not the service's logs.
2. **Collect** the values used, after the last test (stores and extracts outlive their tests
   under the session's basetemp):

   - every SQLite database under basetemp (found by its file header, whatever its name),
     and every Parquet and CSV file there: any table or file with a ``child_id``,
     ``person_id`` (adults' and children's), ``given_name``, ``family_name`` or
     ``date_of_birth`` column contributes those columns.
     Reading the stores rather than hooking the code that writes them catches every path
     into a store: the loader, the API, fixtures writing rows directly, and the servers
     running in subprocesses;
   - each PostgreSQL test schema, read just before its fixture drops it
     (:func:`collect_from_connection`);
   - the literal payloads: ``triage.schema.REFERRAL_EXAMPLE`` and every string literal the
     test sources put under one of those keys (dict literals, keyword arguments, subscript
     assignments), which covers payloads the service rejected and so never stored.

3. **Match**, line by line, and report file, line, column, logger and the *kind* of value,
   never the value:

   - names are matched as whole words (runs of letters, so ``Sam`` is not found in
     ``Sample`` or ``Samuel``) and case-sensitively, as stored: the family name ``Sha``
     is not the hash ``SHA-256``, and a name in capitals is missed. A name of several
     words (``Mary Ann``, ``O'Brien``) must appear word for word. A given name alone
     counts: a log line naming a child by first name is a leak;
   - child IDs are matched on alphanumeric boundaries, so ``C-7`` is found in ``/C-7/`` and
     in ``id=C-7,`` but not in ``C-77`` or ``XC-7``;
   - dates of birth are matched as ISO dates (``2014-06-01``), ``date(2014, 6, 1)`` reprs
     and UK ``01/06/2014``. An ISO date followed by ``T`` and a time, or by a space and a
     time other than midnight, is a timestamp (a log record's own time, a ``received_at``)
     and is not a date of birth; ``2014-06-01 00:00:00`` is how pandas prints a date, so it
     counts. The suite's synthetic worlds give nearly every day since 2001 to some child, so
     in effect a log may hold no bare calendar date in that span: log a time as a timestamp,
     or leave it out. The capture's own lines carry milliseconds since start, not a date.

``python tests/pii_scan.py LOG_DIR --stores DIR`` runs the same scan outside pytest and exits
1 when it finds anything.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

LOG_DIR_ENV = "TRIAGE_TEST_LOG_DIR"
FIELDS = ("child_id", "person_id", "given_name", "family_name", "date_of_birth")
ID_FIELDS = ("child_id", "person_id")
# The test harness's own clients: the HTTP client logs the URLs tests request (query strings
# the tests chose), and nbclient (logger "traitlets") logs at DEBUG every output a notebook
# displays. Those are the tests' records, not the service's logs.
HARNESS_LOGGERS = ("httpx", "httpcore", "traitlets")
SQLITE_MAGIC = b"SQLite format 3\x00"

_LETTERS = re.compile(r"[^\W\d_]+")
_ID_RUN = re.compile(r"[A-Za-z0-9._:-]+")
_ALNUM = re.compile(r"[A-Za-z0-9]+")
# An ISO date; what follows decides whether it is a timestamp.
_ISO_DATE = re.compile(r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d-])")
_TIME_AFTER = re.compile(r"(T)\d{2}:\d{2}| (\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)")
_MIDNIGHT = re.compile(r"00:00(?::00(?:[.,]0+)?)?$")
# date(2014, 6, 1), datetime(2014, 6, 1, 0, 0): a repr at midnight; other times are timestamps.
_DATE_REPR = re.compile(
    r"\bdate(?:time)?\((\d{4}),\s*(\d{1,2}),\s*(\d{1,2})(?:,\s*0)*(?:,\s*tzinfo=[^)]*)?\)"
)
_UK_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")
_PYTEST_LINE = re.compile(r"^\d+ \d+ [A-Z]+ (\S+): ")


# --- the values used ------------------------------------------------------------------------


@dataclass
class PersonalValues:
    """Child and person IDs, given names, family names and dates of birth, with where they
    came from."""

    child_ids: set[str] = field(default_factory=set)
    given_names: set[str] = field(default_factory=set)
    family_names: set[str] = field(default_factory=set)
    dates_of_birth: set[date] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)

    def add(self, column: str, values: Iterable[Any], source: str) -> None:
        """Add the non-empty values of one column (``child_id``, ``given_name``, ...)."""
        before = len(self)
        for value in values:
            if column == "date_of_birth":
                if (parsed := _as_date(value)) is not None:
                    self.dates_of_birth.add(parsed)
                continue
            if not isinstance(value, str):
                continue
            text = value.strip()
            if column in ID_FIELDS:
                text = text.rstrip("._:-")
                if len(text) >= 2:
                    self.child_ids.add(text)
            elif len(text) >= 2 and _LETTERS.search(text):
                (self.given_names if column == "given_name" else self.family_names).add(text)
        if len(self) > before:
            self.sources.add(source)

    def update(self, other: PersonalValues) -> None:
        """Add everything ``other`` holds."""
        self.child_ids |= other.child_ids
        self.given_names |= other.given_names
        self.family_names |= other.family_names
        self.dates_of_birth |= other.dates_of_birth
        self.sources |= other.sources

    def __len__(self) -> int:
        return (
            len(self.child_ids)
            + len(self.given_names)
            + len(self.family_names)
            + len(self.dates_of_birth)
        )

    def summary(self) -> str:
        """Counts per kind, for the report."""
        return (
            f"{len(self.child_ids)} child and person IDs, {len(self.given_names)} given names, "
            f"{len(self.family_names)} family names, {len(self.dates_of_birth)} dates of birth "
            f"from {len(self.sources)} sources"
        )


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp; NaT has no date
        try:
            return value.to_pydatetime().date()
        except (ValueError, AttributeError):
            return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def collect_from_tree(root: Path, *, skip: Iterable[Path] = ()) -> PersonalValues:
    """The values in every SQLite database, Parquet and CSV file under ``root``."""
    skipped = [s.resolve() for s in skip]
    values = PersonalValues()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(path.resolve().is_relative_to(s) for s in skipped):
            continue
        try:
            if path.suffix == ".parquet":
                values.update(_from_parquet(path))
            elif path.suffix == ".csv":
                values.update(_from_csv(path))
            elif _is_sqlite(path):
                values.update(_from_sqlite(path))
        except Exception as error:  # a half-written file of a killed test is not a leak
            print(f"pii scan: could not read {path}: {type(error).__name__}", file=sys.stderr)
    return values


def _is_sqlite(path: Path) -> bool:
    if path.name.endswith(("-wal", "-shm", "-journal")) or path.stat().st_size < 100:
        return False
    with path.open("rb") as handle:
        return handle.read(16) == SQLITE_MAGIC


def _from_sqlite(path: Path) -> PersonalValues:
    values = PersonalValues()
    connection = sqlite3.connect(path, timeout=5)
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            quoted = table.replace('"', '""')
            columns = {row[1] for row in connection.execute(f'PRAGMA table_info("{quoted}")')}
            for column in FIELDS:
                if column in columns:
                    rows = connection.execute(f'SELECT DISTINCT "{column}" FROM "{quoted}"')
                    values.add(column, (row[0] for row in rows), f"{path}:{table}")
    finally:
        connection.close()
    return values


def _from_parquet(path: Path) -> PersonalValues:
    import pyarrow.parquet as pq

    values = PersonalValues()
    columns = [c for c in FIELDS if c in pq.read_schema(path).names]
    if columns:
        table = pq.read_table(path, columns=columns)
        for column in columns:
            values.add(column, table.column(column).unique().to_pylist(), str(path))
    return values


def _from_csv(path: Path) -> PersonalValues:
    values = PersonalValues()
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in FIELDS if c in (reader.fieldnames or ())]
        if not columns:
            return values
        seen: dict[str, set[str]] = {c: set() for c in columns}
        for row in reader:
            for column in columns:
                seen[column].add(row[column] or "")
    for column, found in seen.items():
        values.add(column, found, str(path))
    return values


def collect_from_connection(connection: Any, schema: str) -> PersonalValues:
    """The values in one PostgreSQL schema (a SQLAlchemy connection), before it is dropped."""
    from sqlalchemy import inspect

    values = PersonalValues()
    inspector = inspect(connection)
    for table in inspector.get_table_names(schema=schema):
        columns = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        for column in FIELDS:
            if column in columns:
                rows = connection.exec_driver_sql(
                    f'SELECT DISTINCT "{column}" FROM "{schema}"."{table}"'
                )
                values.add(column, (row[0] for row in rows), f"postgres:{schema}.{table}")
    return values


def snapshot_schema(engine: Any, schema: str) -> PersonalValues:
    """The values in one PostgreSQL schema, read in a transaction of its own (10 s lock wait)."""
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            return collect_from_connection(connection, schema)
    except Exception as error:  # the schema must still be dropped; say what was missed
        print(f"pii scan: could not read schema {schema}: {type(error).__name__}", file=sys.stderr)
        return PersonalValues()


def collect_from_sources(paths: Iterable[Path]) -> PersonalValues:
    """String literals the sources put under ``child_id``, ``given_name``... keys."""
    values = PersonalValues()
    for path in paths:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as error:  # collection reports it anyway
            print(f"pii scan: could not parse {path}: {type(error).__name__}", file=sys.stderr)
            continue
        for node in ast.walk(tree):
            pairs: list[tuple[ast.AST | None, ast.AST]] = []
            if isinstance(node, ast.Dict):
                pairs = list(zip(node.keys, node.values, strict=True))
            elif isinstance(node, ast.Call):
                pairs = [(ast.Constant(k.arg), k.value) for k in node.keywords if k.arg]
            elif isinstance(node, ast.Assign):
                pairs = [
                    (t.slice, node.value) for t in node.targets if isinstance(t, ast.Subscript)
                ]
            for key, value in pairs:
                if isinstance(key, ast.Constant) and key.value in FIELDS:
                    values.add(key.value, _literals(value), f"{path}")
    return values


def _literals(node: ast.AST) -> Iterator[Any]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        for element in node.elts:
            yield from _literals(element)
    elif (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "date"
        and len(node.args) == 3
        and all(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in node.args)
    ):
        with contextlib.suppress(ValueError):
            yield date(*(a.value for a in node.args))  # type: ignore[attr-defined]


def collect_from_mapping(mapping: Any, source: str) -> PersonalValues:
    """The values under those keys anywhere in a nested dict/list (an example payload)."""
    values = PersonalValues()
    stack = [mapping]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in FIELDS:
                    values.add(key, [value], source)
                else:
                    stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return values


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One personal value in one log line: where, and what kind (never the value)."""

    path: Path
    line: int
    column: int
    kind: str
    logger: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.kind} (logger {self.logger})"


class Scanner:
    """Finds the given values in text: names as whole words, IDs on alphanumeric boundaries."""

    def __init__(self, values: PersonalValues) -> None:
        self.names: dict[tuple[str, ...], str] = {}
        kinds = (("given name", values.given_names), ("family name", values.family_names))
        for kind, names in kinds:
            for name in names:
                words = tuple(_LETTERS.findall(name))
                known = self.names.get(words)
                self.names[words] = kind if known in (None, kind) else "name"
        self.longest_name = max((len(k) for k in self.names), default=0)
        self.child_ids = frozenset(values.child_ids)
        self.longest_id = max((len(_ALNUM.findall(i)) for i in self.child_ids), default=0)
        self.dates = frozenset(values.dates_of_birth)

    def scan_line(self, text: str) -> Iterator[tuple[int, str]]:
        """(column, kind) of each value found in one line, in order of column."""
        found: list[tuple[int, str]] = []
        if self.names:
            words = list(_LETTERS.finditer(text))
            for i, word in enumerate(words):
                for n in range(1, min(self.longest_name, len(words) - i) + 1):
                    key = tuple(w.group() for w in words[i : i + n])
                    if (kind := self.names.get(key)) is not None:
                        found.append((word.start(), kind))
                        break
        if self.child_ids:
            for run in _ID_RUN.finditer(text):
                parts = list(_ALNUM.finditer(run.group()))
                for i, start in enumerate(parts):
                    for end in parts[i : i + self.longest_id]:
                        if run.group()[start.start() : end.end()] in self.child_ids:
                            found.append((run.start() + start.start(), "child ID"))
                            break
        if self.dates:
            found.extend((col, "date of birth") for col in self._dates(text))
        yield from sorted(found)

    def _dates(self, text: str) -> Iterator[int]:
        for match in _ISO_DATE.finditer(text):
            after = _TIME_AFTER.match(text, match.end())
            if after and (after.group(1) or not _MIDNIGHT.match(after.group(2))):
                continue  # a timestamp, not a date
            if _date_of(match.group(1), match.group(2), match.group(3)) in self.dates:
                yield match.start()
        for match in _DATE_REPR.finditer(text):
            if _date_of(match.group(1), match.group(2), match.group(3)) in self.dates:
                yield match.start()
        for match in _UK_DATE.finditer(text):
            if _date_of(match.group(3), match.group(2), match.group(1)) in self.dates:
                yield match.start()

    def scan_file(self, path: Path) -> list[Finding]:
        """Every finding in one log file."""
        findings = []
        logger = "?"
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                logger = _logger_of(line) or logger
                for column, kind in self.scan_line(line):
                    findings.append(Finding(path, number, column + 1, kind, logger))
        return findings


def _date_of(year: str, month: str, day: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _logger_of(line: str) -> str | None:
    """The logger named by a line of the capture handler or of the service's JSON logs."""
    if match := _PYTEST_LINE.match(line):
        return match.group(1)
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        if isinstance(entry, dict) and isinstance(entry.get("logger"), str):
            return entry["logger"]
    return None


def scan_logs(log_dir: Path, values: PersonalValues) -> list[Finding]:
    """Every finding in every file under ``log_dir``."""
    scanner = Scanner(values)
    return [
        finding
        for path in sorted(log_dir.rglob("*"))
        if path.is_file()
        for finding in scanner.scan_file(path)
    ]


def report(findings: list[Finding], *, limit: int = 50) -> str:
    """The findings, one a line (the first ``limit``), then a count by kind and logger."""
    lines = [str(f) for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    counts: dict[tuple[str, str], int] = {}
    for finding in findings:
        counts[finding.kind, finding.logger] = counts.get((finding.kind, finding.logger), 0) + 1
    lines += [f"  {n} x {kind}, logger {logger}" for (kind, logger), n in sorted(counts.items())]
    return "\n".join(lines)


# --- capture --------------------------------------------------------------------------------


class CaptureFormatter(logging.Formatter):
    """Milliseconds since start, pid, level, logger, message, then exception and stack text.

    No calendar time, so a log line's own timestamp can never pass for a date of birth.
    """

    def __init__(self) -> None:
        super().__init__("%(relativeCreated)d %(process)d %(levelname)s %(name)s: %(message)s")


def set_levels() -> None:
    """Every logger at DEBUG, except the test harness's clients (``HARNESS_LOGGERS``)."""
    logging.getLogger().setLevel(logging.DEBUG)
    for name in HARNESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def install_capture(log_dir: Path) -> logging.Handler:
    """Send every record of this process to ``log_dir/pytest.log`` at DEBUG."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "pytest.log", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(CaptureFormatter())
    set_levels()
    logging.getLogger().addHandler(handler)
    return handler


def remove_capture(handler: logging.Handler) -> None:
    """Detach and close the capture handler."""
    logging.getLogger().removeHandler(handler)
    handler.close()


@dataclass
class Session:
    """What the pytest session gathers for the scan at its end."""

    log_dir: Path | None = None
    basetemp: Path | None = None
    values: PersonalValues = field(default_factory=PersonalValues)


SESSION = Session()


def check_session(sources: Iterable[Path]) -> tuple[list[Finding], str]:
    """Collect the session's values, scan its logs: (findings, a summary line)."""
    assert SESSION.log_dir is not None and SESSION.basetemp is not None
    started = time.perf_counter()
    from triage.schema import REFERRAL_EXAMPLE

    values = PersonalValues()
    values.update(SESSION.values)
    values.update(collect_from_tree(SESSION.basetemp, skip=[SESSION.log_dir]))
    values.update(collect_from_sources(sources))
    values.update(collect_from_mapping(REFERRAL_EXAMPLE, "triage.schema.REFERRAL_EXAMPLE"))
    collected = time.perf_counter() - started
    findings = scan_logs(SESSION.log_dir, values)
    size = sum(p.stat().st_size for p in SESSION.log_dir.rglob("*") if p.is_file())
    summary = (
        f"personal-data log scan: {values.summary()}; {size / 1e6:.1f} MB of logs in "
        f"{SESSION.log_dir}; collected in {collected:.1f} s, scanned in "
        f"{time.perf_counter() - started - collected:.1f} s: {len(findings)} found"
    )
    if bypassed := unpropagated_loggers():
        summary += f"\nnot captured (these loggers do not propagate): {', '.join(bypassed)}"
    return findings, summary


def unpropagated_loggers() -> list[str]:
    """Enabled loggers whose records never reach the root handler, so escape the capture."""
    return sorted(
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and not logger.propagate and not logger.disabled
    )


def main(argv: list[str] | None = None) -> int:
    """Scan LOG_DIR for values found in the stores under --stores; exit 1 on any finding."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("--stores", type=Path, action="append", default=[])
    parser.add_argument("--sources", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    values = PersonalValues()
    for root in args.stores:
        values.update(collect_from_tree(root, skip=[args.log_dir]))
    values.update(collect_from_sources(args.sources))
    findings = scan_logs(args.log_dir, values)
    print(f"pii scan: {values.summary()}; {len(findings)} found")
    if findings:
        print(report(findings))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
