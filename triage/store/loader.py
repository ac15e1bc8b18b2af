"""Bulk-load a validated extract into the store, idempotently and in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Column, Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from triage.store.engine import make_engine
from triage.store.errors import ExtractError, StoreError
from triage.store.extract import (
    IDENTITY_TABLE,
    LOADED_TABLES,
    PEOPLE_TABLES,
    derive_households,
    read_extract,
    read_identity_records,
    read_table,
)
from triage.store.tables import (
    Base,
    ChildRow,
    HouseholdRow,
    PersonRow,
    ReferralRow,
    utcnow,
)
from triage.store.timeshift import extract_end, shift_for, shift_frame, shift_frames

__all__ = ["CHUNK_SIZE", "ExtractError", "load_extract"]

CHUNK_SIZE = 5_000
SQLITE_LOAD_CACHE_KIB = 256 * 1024

# (table, column, referenced key): checked up front so a bad id is named, not an FK error.
REFERENCES: tuple[tuple[str, str, Any], ...] = (
    ("referrals", "child_id", ChildRow.child_id),
    ("referrals", "household_id", HouseholdRow.household_id),
    ("events", "child_id", ChildRow.child_id),
    ("events", "household_id", HouseholdRow.household_id),
    ("events", "person_id", PersonRow.person_id),
    ("household_memberships", "person_id", PersonRow.person_id),
    ("household_memberships", "household_id", HouseholdRow.household_id),
    ("decisions", "referral_id", ReferralRow.referral_id),
    ("outcomes", "referral_id", ReferralRow.referral_id),
)
TABLES = Base.metadata.tables
_REFERENCED_FRAME = {
    "child_id": "children",
    "household_id": "households",
    "person_id": "persons",
    "referral_id": "referrals",
}
LOAD_ORDER = (
    "households",
    "children",
    "persons",
    "household_memberships",
    "referrals",
    "events",
)
"""Referenced rows first: a membership names a person and a household, an event a person."""


def load_extract(
    directory: Path, *, url: str, progress: bool = True, as_of: datetime | None = None
) -> dict[str, int]:
    """Load the extract in ``directory`` into the database at ``url``; return rows inserted.

    ``as_of``: move every date and time of the extract so that it ends at that moment (a
    demo as of today; ``triage.store.timeshift``); the files are not changed.
    """
    frames, by = _frames_to_load(Path(directory), as_of=as_of)
    frames = _add_stored_columns(frames, loaded_at=utcnow())
    engine = make_engine(url)
    try:
        with engine.begin() as connection, _progress(progress) as bar:
            if connection.dialect.name == "sqlite":
                # A bigger page cache for this one connection keeps index inserts in memory.
                connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_LOAD_CACHE_KIB}")
            _check_references(connection, frames)
            counts = {
                name: _load_table(connection, TABLES[name], frames[name], bar)
                for name in LOAD_ORDER
            }
            counts["decisions"] = _load_decisions(connection, frames["decisions"], bar)
            counts["outcomes"] = _load_table(
                connection, TABLES["outcomes"], frames["outcomes"], bar
            )
            identities = _identity_frame(Path(directory), loaded_at=utcnow(), shift=by)
            if identities is not None:
                counts[IDENTITY_TABLE] = _load_table(
                    connection, TABLES[IDENTITY_TABLE], identities, bar
                )
    finally:
        engine.dispose()
    return counts


def _frames_to_load(
    directory: Path, *, as_of: datetime | None = None
) -> tuple[dict[str, pd.DataFrame], timedelta | None]:
    """The extract's validated tables as Python values, plus the households they name.

    ``persons`` and ``household_memberships`` are the extract's own, or derived from its
    children when it has none (each child in its household since birth). With ``as_of``, every
    date and time is moved so the extract ends then; the amount comes back (else None).
    """
    world = read_extract(directory, python_values=True)
    frames = {table: getattr(world, table) for table in (*LOADED_TABLES, *PEOPLE_TABLES)}
    by = None
    if as_of is not None:
        by = shift_for(extract_end(world.manifest, frames["referrals"]), as_of)
        frames = shift_frames(frames, by)
    frames["households"] = _households(frames["children"], frames["household_memberships"])
    return frames, by


def _identity_frame(
    directory: Path, *, loaded_at: datetime, shift: timedelta | None = None
) -> pd.DataFrame | None:
    """The extract's identity records, each resolved to the person its agency filed records
    under (``subject_record_id`` of its referrals and events), when the extract says so.

    None when the extract has no identity records. ``resolution`` is ``loaded``: taken as the
    extract gives it, not linked by this service; a record no referral or event names stays
    unresolved (``person_id`` None) until ``triage link`` resolves it.
    """
    records = read_identity_records(directory)
    if records is None:
        return None
    if shift is not None:
        records = shift_frame(records, shift)
    filed = _filed_under(directory)
    records["person_id"] = pd.Series(
        [filed.get(record_id) for record_id in records["record_id"]], dtype=object
    )
    records["resolution"] = _constant("loaded", len(records))
    records["match_probability"] = _constant(None, len(records))
    records["created_at"] = _constant(loaded_at, len(records))
    return records


def _filed_under(directory: Path) -> dict[str, str]:
    """``subject_record_id`` -> the person the extract files it under (a referral's child; an
    event's child, else its person), read from those columns only; empty when absent."""
    filed: dict[str, str] = {}
    for table, people in (("events", ("person_id", "child_id")), ("referrals", ("child_id",))):
        path = directory / f"{table}.parquet"
        if path.exists():
            names = set(pq.read_schema(path).names)
            if "subject_record_id" not in names:
                continue
            raw = pd.read_parquet(path, columns=["subject_record_id", *people])
        else:
            raw = read_table(directory, table)
            if "subject_record_id" not in raw.columns:
                continue
        for person in people:  # later columns win: an event's child before its person
            named = raw[raw["subject_record_id"].notna() & raw[person].notna()]
            keys, values = named["subject_record_id"].astype(str), named[person].astype(str)
            filed |= dict(zip(keys, values, strict=True))
    return filed


def _households(children: pd.DataFrame, memberships: pd.DataFrame) -> pd.DataFrame:
    """The children's households, then any household only a membership names.

    An adult's earlier address, where no child of the extract lived, is still a household:
    the membership is the record of it (no deprivation decile is known for it).
    """
    households = derive_households(children)
    known = set(households["household_id"])
    extra = memberships[~memberships["household_id"].isin(known)]
    if extra.empty:
        return households
    only_named = extra.groupby("household_id", sort=True)["synthetic"].all()
    named = pd.DataFrame(
        {
            "household_id": only_named.index.tolist(),
            "deprivation_decile": [None] * len(only_named),
            "synthetic": [bool(v) for v in only_named],
        },
        dtype=object,
    )
    return pd.concat([households, named], ignore_index=True)


def _add_stored_columns(
    frames: dict[str, pd.DataFrame], *, loaded_at: datetime
) -> dict[str, pd.DataFrame]:
    """Add the columns the store keeps but the extract does not carry."""
    for table in ("children", "referrals"):
        frames[table]["created_at"] = _constant(loaded_at, len(frames[table]))
    frames["referrals"]["status"] = "open"  # the decisions, loaded next, close them
    decisions = frames["decisions"]
    decisions["reason_codes"] = pd.Series([[] for _ in range(len(decisions))], dtype=object)
    for column in ("agreement", "rationale", "decided_by"):
        decisions[column] = _constant(None, len(decisions))
    return frames


def _constant(value: Any, length: int) -> pd.Series:
    return pd.Series([value] * length, dtype=object)


def _check_references(connection: Connection, frames: dict[str, pd.DataFrame]) -> None:
    """Refuse references to ids neither in the extract nor already stored."""
    for table, column, target in REFERENCES:
        wanted = set(frames[table][column].dropna())
        missing = wanted - set(frames[_REFERENCED_FRAME[column]][column])
        for chunk in _chunks(sorted(missing), CHUNK_SIZE):
            missing -= set(connection.scalars(select(target).where(target.in_(chunk))))
        if missing:
            sample = sorted(missing)[:5]
            raise ExtractError(table, column, f"{len(missing)} unknown id(s), e.g. {sample}")


def _load_table(connection: Connection, table: Table, frame: pd.DataFrame, bar: Progress) -> int:
    """Insert ``frame`` in chunks, skipping rows whose primary key is already stored."""
    task = bar.add_task(table.name, total=len(frame))
    inserted = 0
    for start in range(0, len(frame), CHUNK_SIZE):
        chunk = frame.iloc[start : start + CHUNK_SIZE]
        inserted += _insert_new(connection, table, chunk)
        bar.advance(task, len(chunk))
    return inserted


def _load_decisions(connection: Connection, frame: pd.DataFrame, bar: Progress) -> int:
    """Insert the decisions of still-open referrals, marking those referrals decided."""
    referrals = TABLES["referrals"]
    task = bar.add_task("decisions", total=len(frame))
    inserted = 0
    for start in range(0, len(frame), CHUNK_SIZE):
        chunk = frame.iloc[start : start + CHUNK_SIZE]
        # Closing and inserting together keeps re-loads idempotent: only the referrals this
        # statement moved from open to decided get a decision row.
        closed = set(
            connection.scalars(
                update(referrals)
                .where(referrals.c.referral_id.in_(chunk["referral_id"].tolist()))
                .where(referrals.c.status == "open")
                .values(status="decided")
                .returning(referrals.c.referral_id)
            )
        )
        inserted += _insert_new(
            connection, TABLES["decisions"], chunk[chunk["referral_id"].isin(closed)]
        )
        bar.advance(task, len(chunk))
    return inserted


def _insert_new(connection: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Insert one chunk with ON CONFLICT (primary key) DO NOTHING; return rows inserted."""
    if frame.empty:
        return 0
    (key,) = table.primary_key.columns
    dialect = connection.dialect
    module = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect.name)
    if module is None:
        raise StoreError(f"loading into {dialect.name} is not supported: use SQLite or PostgreSQL")
    columns = list(frame.columns)
    statement = module.insert(table).on_conflict_do_nothing(index_elements=[key])
    compiled = statement.compile(dialect=dialect, column_keys=columns)
    names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
    if unsupplied := set(names) - set(columns):  # e.g. a Python-side default: supply it
        raise ValueError(f"{table.name}: no values for {sorted(unsupplied)}")
    # Core's per-row parameter handling costs more than the database's own insert work, so
    # bind each column once with its type's processor and hand the driver's executemany
    # plain rows; both sqlite3 and psycopg then report the summed rowcount.
    bound = {name: _bind(table.c[name], frame[name].tolist(), connection) for name in names}
    rows = zip(*(bound[name] for name in names), strict=True)
    if compiled.positional:
        parameters: list[Any] = list(rows)
    else:
        parameters = [dict(zip(names, row, strict=True)) for row in rows]
    return connection.exec_driver_sql(compiled.string, parameters).rowcount


def _bind(column: Column[Any], values: list[Any], connection: Connection) -> list[Any]:
    """Apply the column type's own bind processing (UTC check, JSON, booleans) to ``values``."""
    dialect = connection.dialect
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return values if process is None else [process(value) for value in values]


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    bar = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
    with bar:
        yield bar


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
