"""Read and validate an extract directory (Parquet, or CSV when the Parquet file is absent)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from triage.store.errors import ExtractError
from triage.synth.extract import MANIFEST
from triage.synth.layout import World
from triage.vocab import (
    CHILD_MEMBERSHIP_PREFIX,
    EVENT_AGENCY,
    LIST_SEPARATOR,
    Agency,
    Concern,
    DecisionKind,
    Ethnicity,
    EventKind,
    HouseholdRole,
    InjurySite,
    OutcomeLevel,
    PlanCategory,
    ReferrerRelationship,
    ReferrerType,
    Sex,
)

LOADED_TABLES = ("children", "referrals", "events", "decisions", "outcomes")
PEOPLE_TABLES = ("persons", "household_memberships")
"""Optional tables (vocabulary 2): derived from ``children`` when an extract has none."""
IDENTITY_TABLE = "identity_records"
"""Optional (issue 21): each agency's record of a person as typed; old extracts load without it
(None)."""
NEVER_READ = frozenset({"truth", "identity_truth"})
"""Latent truth (and the true person behind each identity record) is kept apart from every
model input: the loader must never open it."""

Converter = Callable[[str, str, pd.Series], pd.Series]


@dataclass(frozen=True)
class Column:
    """An extract column: how to convert it and whether it may hold nulls."""

    name: str
    convert: Converter
    nullable: bool = False
    optional: bool = False
    """The column may be absent (an extract written before it existed): read as all nulls."""


def _strings(table: str, column: str, series: pd.Series) -> pd.Series:
    values = series.astype("string")
    return values.astype(object).where(values.notna(), None)


def _text(table: str, column: str, series: pd.Series) -> pd.Series:
    # CSV cannot tell an empty narrative from a missing one; both are stored as "".
    return series.astype("string").fillna("").astype(object)


def _vocab(enum: type[StrEnum]) -> Converter:
    allowed = [member.value for member in enum]

    def convert(table: str, column: str, series: pd.Series) -> pd.Series:
        values = _strings(table, column, series)
        unknown = values.notna() & ~values.isin(allowed)
        if unknown.any():
            raise ExtractError(table, column, _unknown(values[unknown], enum))
        return values

    return convert


def _vocab_list(enum: type[StrEnum]) -> Converter:
    allowed = [member.value for member in enum]

    def convert(table: str, column: str, series: pd.Series) -> pd.Series:
        values = series.astype("string").fillna("")
        items = values.str.split(LIST_SEPARATOR).explode()
        items = items[items != ""]
        unknown = ~items.isin(allowed)
        if unknown.any():
            raise ExtractError(table, column, _unknown(items[unknown], enum))
        lists = [[item for item in value.split(LIST_SEPARATOR) if item] for value in values]
        return pd.Series(lists, index=series.index, dtype=object)

    return convert


def _unknown(values: pd.Series, enum: type[StrEnum]) -> str:
    sample = sorted(map(str, values.unique()))[:5]
    return f"unknown {enum.__name__} value(s) {sample} ({len(values)} row(s))"


_TRUE = {"true": True, "1": True, "t": True, "yes": True}
_FALSE = {"false": False, "0": False, "f": False, "no": False}


def _bools(table: str, column: str, series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.astype(object)
    lowered = series.astype("string").str.strip().str.lower()
    mapped = lowered.map({**_TRUE, **_FALSE})
    invalid = lowered.notna() & mapped.isna()
    if invalid.any():
        raise ExtractError(table, column, f"not a boolean: {sorted(lowered[invalid].unique())[:5]}")
    return mapped.astype(object).where(mapped.notna(), None)


def _deciles(table: str, column: str, series: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce")
    invalid = series.notna() & (numbers.isna() | (numbers % 1 != 0) | ~numbers.between(1, 10))
    if invalid.any():
        raise ExtractError(
            table, column, f"not a decile 1..10: {sorted(map(str, series[invalid].unique()))[:5]}"
        )
    return numbers.astype("Int64").astype(object).where(numbers.notna(), None)


_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"


def _timestamps(table: str, column: str, series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is None:
            raise ExtractError(table, column, "timestamps must be timezone-aware (UTC)")
        instants = series.dt.tz_convert("UTC")
    else:
        text = series.astype("string").str.strip()
        naive = text.notna() & ~text.str.contains(_OFFSET, regex=True).fillna(False)
        if naive.any():
            raise ExtractError(
                table, column, f"timestamps need a UTC offset: {text[naive].iloc[0]!r}"
            )
        try:
            instants = pd.to_datetime(text, utc=True, format="ISO8601")
        except (ValueError, TypeError) as error:
            raise ExtractError(table, column, f"not an ISO 8601 timestamp: {error}") from error
    python = instants.dt.floor("us").dt.to_pydatetime()
    return pd.Series(python, index=series.index, dtype=object).where(instants.notna(), None)


def _dates(table: str, column: str, series: pd.Series) -> pd.Series:
    try:
        moments = pd.to_datetime(series)
    except (ValueError, TypeError) as error:
        raise ExtractError(table, column, f"not a date: {error}") from error
    if (
        getattr(moments.dt, "tz", None) is not None
        or (moments.dropna() != moments.dropna().dt.normalize()).any()
    ):
        raise ExtractError(table, column, "dates must be calendar dates (midnight, no zone)")
    return moments.dt.date.astype(object).where(moments.notna(), None)


def _json_objects(table: str, column: str, series: pd.Series) -> pd.Series:
    # Millions of events repeat a few attribute documents: each distinct text is parsed once
    # (each row still gets its own dict).
    documents: dict[str, dict[str, Any]] = {}

    def parse(position: int, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        if value is None or value == "" or (not isinstance(value, str) and pd.isna(value)):
            return {}
        if isinstance(value, str) and value in documents:
            return dict(documents[value])
        try:
            parsed = json.loads(value)
        except (TypeError, ValueError) as error:
            raise ExtractError(table, column, f"row {position}: invalid JSON ({error})") from error
        if not isinstance(parsed, dict):
            raise ExtractError(table, column, f"row {position}: expected a JSON object")
        if isinstance(value, str):
            documents[value] = parsed
        return parsed

    parsed = [parse(position, value) for position, value in enumerate(series.tolist())]
    return pd.Series(parsed, index=series.index, dtype=object)


SCHEMA: dict[str, tuple[Column, ...]] = {
    "children": (
        Column("child_id", _strings),
        Column("household_id", _strings),
        Column("given_name", _strings),
        Column("family_name", _strings),
        Column("date_of_birth", _dates),
        Column("sex", _vocab(Sex)),
        Column("ethnicity", _vocab(Ethnicity)),
        Column("disability", _bools),
        Column("deprivation_decile", _deciles, nullable=True),
        Column("synthetic", _bools),
    ),
    "referrals": (
        Column("referral_id", _strings),
        Column("source_system", _strings),
        Column("source_referral_id", _strings),
        Column("child_id", _strings),
        Column("household_id", _strings),
        Column("received_at", _timestamps),
        Column("referrer_type", _vocab(ReferrerType)),
        Column("referrer_relationship", _vocab(ReferrerRelationship), nullable=True),
        Column("referrer_id", _strings, nullable=True),
        Column("concerns", _vocab_list(Concern)),
        Column("injury_reported", _bools),
        Column("injury_sites", _vocab_list(InjurySite)),
        Column("injury_photographed", _bools),
        Column("narrative", _text),
        Column("synthetic", _bools),
        # The identity record the agency filed the referral under (issue 21); child_id stays
        # the resolved child.
        Column("subject_record_id", _strings, nullable=True, optional=True),
    ),
    "events": (
        Column("event_id", _strings),
        Column("source_system", _strings),
        Column("source_event_id", _strings),
        Column("child_id", _strings, nullable=True),
        # Empty for a record about an adult living in none of the extract's households then.
        Column("household_id", _strings, nullable=True),
        Column("person_id", _strings, nullable=True, optional=True),
        Column("occurred_at", _timestamps),
        Column("agency", _vocab(Agency)),
        Column("kind", _vocab(EventKind)),
        Column("attributes", _json_objects),
        Column("synthetic", _bools),
        Column("subject_record_id", _strings, nullable=True, optional=True),
        # When the agency shared the event; absent or null: when it occurred.
        Column("recorded_at", _timestamps, nullable=True, optional=True),
    ),
    "decisions": (
        Column("referral_id", _strings),
        Column("decided_at", _timestamps),
        Column("decision", _vocab(DecisionKind)),
        Column("synthetic", _bools),
    ),
    "outcomes": (
        Column("referral_id", _strings),
        Column("highest_level", _vocab(OutcomeLevel)),
        Column("investigated_12m", _bools),
        Column("significant_harm_12m", _bools),
        Column("cp_category", _vocab(PlanCategory), nullable=True),
        Column("synthetic", _bools),
    ),
    "persons": (
        Column("person_id", _strings),
        Column("is_child", _bools),
        Column("given_name", _strings, nullable=True),
        Column("family_name", _strings, nullable=True),
        Column("date_of_birth", _dates, nullable=True),
        Column("sex", _vocab(Sex)),
        Column("synthetic", _bools),
    ),
    "household_memberships": (
        Column("membership_id", _strings),
        Column("person_id", _strings),
        Column("household_id", _strings),
        Column("role", _vocab(HouseholdRole)),
        Column("joined_at", _timestamps),
        Column("left_at", _timestamps, nullable=True),
        Column("synthetic", _bools),
    ),
    IDENTITY_TABLE: (
        Column("record_id", _strings),
        Column("source_system", _strings),
        Column("source_person_id", _strings),
        Column("given_name", _strings, nullable=True),
        Column("family_name", _strings, nullable=True),
        Column("date_of_birth", _dates, nullable=True),
        Column("sex", _vocab(Sex)),
        Column("postcode", _strings, nullable=True),
        Column("nhs_number", _strings, nullable=True),
        Column("school", _strings, nullable=True),
        Column("is_child", _bools),
        Column("first_seen_at", _timestamps),
    ),
}

UNIQUE_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "children": (("child_id",),),
    "referrals": (("referral_id",), ("source_system", "source_referral_id")),
    "events": (("event_id",), ("source_system", "source_event_id")),
    "decisions": (("referral_id",),),
    "outcomes": (("referral_id",),),
    "persons": (("person_id",),),
    "household_memberships": (("membership_id",),),
    IDENTITY_TABLE: (("record_id",), ("source_system", "source_person_id")),
}


def read_table(directory: Path, table: str) -> pd.DataFrame:
    """Read ``<table>.parquet`` (or ``<table>.csv`` when absent) from an extract directory."""
    if table in NEVER_READ:
        raise ValueError(f"{table!r} is never read by the loader")
    parquet, csv = directory / f"{table}.parquet", directory / f"{table}.csv"
    if parquet.exists():
        return pd.read_parquet(parquet)
    if csv.exists():
        # Everything as text: the column converters own the parsing, so CSV == Parquet.
        return pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    raise ExtractError(table, None, f"neither {parquet.name} nor {csv.name} in {directory}")


def validate_table(table: str, raw: pd.DataFrame, *, keep: bool = True) -> pd.DataFrame:
    """Check and convert one extract table to Python values (None for nulls).

    Without ``keep`` each column is checked and its conversion dropped at once, and ``raw``
    itself comes back: a 10-million-row table is checked without a copy as Python objects.
    """
    converted: dict[str, pd.Series] = {}
    for column in SCHEMA[table]:
        if column.name not in raw.columns:
            if not column.optional:
                raise ExtractError(table, column.name, "required column is missing")
            raw = raw.assign(**{column.name: pd.Series([None] * len(raw), dtype=object)})
        values = column.convert(table, column.name, raw[column.name])
        if not column.nullable and values.isna().any():
            raise ExtractError(table, column.name, f"{int(values.isna().sum())} null value(s)")
        if keep:
            converted[column.name] = values
    if keep:
        frame = pd.DataFrame(converted, index=raw.index, dtype=object).reset_index(drop=True)
    else:  # the keys are text columns, so duplicates are the same before and after conversion
        frame = raw
    for key in UNIQUE_KEYS[table]:
        duplicated = frame.duplicated(list(key))
        if duplicated.any():
            sample = frame.loc[duplicated, list(key)].head(3).to_dict("records")
            raise ExtractError(table, ",".join(key), f"duplicate key(s), e.g. {sample}")
    return frame


def check_event_agencies(frame: pd.DataFrame) -> None:
    """Refuse events whose agency does not record their kind (``EVENT_AGENCY``)."""
    expected = frame["kind"].map(
        {kind.value: agency.value for kind, agency in EVENT_AGENCY.items()}
    )
    wrong = frame["agency"] != expected
    if wrong.any():
        row = frame.loc[wrong].iloc[0]
        raise ExtractError("events", "agency", f"{row['kind']} is not recorded by {row['agency']}")


def derive_households(children: pd.DataFrame) -> pd.DataFrame:
    """One household row per distinct household_id (first non-null decile; synthetic if all are).

    Households only memberships name are added by the loader (``triage.store.loader``).
    """
    households: dict[str, dict[str, Any]] = {}
    for household_id, decile, synthetic in zip(
        children["household_id"], children["deprivation_decile"], children["synthetic"], strict=True
    ):
        row = households.setdefault(
            household_id,
            {"household_id": household_id, "deprivation_decile": None, "synthetic": True},
        )
        if row["deprivation_decile"] is None:
            row["deprivation_decile"] = decile
        row["synthetic"] = row["synthetic"] and synthetic
    return pd.DataFrame(
        list(households.values()),
        columns=["household_id", "deprivation_decile", "synthetic"],
        dtype=object,
    )


def read_extract(
    directory: Path, *, with_truth: bool = False, python_values: bool = False
) -> World:
    """Read and validate an extract directory; the truth only when asked for.

    Every loaded table is read (Parquet, or CSV when absent) and checked against ``SCHEMA``,
    raising ``ExtractError`` at the first fault, and the event agencies are checked. With
    ``python_values`` the tables come converted to Python values, None for nulls (what the
    loader binds); otherwise as read from Parquet, with its column types (what the feature
    builders take), and a table only in CSV is refused. The manifest is read when present.
    """
    tables: dict[str, pd.DataFrame] = {}
    for table in LOADED_TABLES:
        raw = read_table(directory, table)
        if not python_values and not (directory / f"{table}.parquet").exists():
            raise ExtractError(table, None, f"typed columns need {table}.parquet, not CSV")
        tables[table] = validate_table(table, raw, keep=python_values)
    check_event_agencies(tables["events"])
    check_recorded_after_occurred(tables["events"])
    people = _people_tables(directory, tables["children"], python_values=python_values)
    identity = _identity_records(directory, python_values=python_values)
    truth = pd.read_parquet(directory / "truth.parquet") if with_truth else pd.DataFrame()
    return World(
        manifest=_manifest(directory), truth=truth, **tables, **people, identity_records=identity
    )


def check_recorded_after_occurred(frame: pd.DataFrame) -> None:
    """Refuse events shared before they occurred (``recorded_at`` < ``occurred_at``)."""
    recorded = pd.to_datetime(frame["recorded_at"], utc=True)
    if recorded.isna().all():
        return
    early = recorded < pd.to_datetime(frame["occurred_at"], utc=True)
    if early.any():
        row = frame.loc[early].iloc[0]
        raise ExtractError(
            "events", "recorded_at", f"event {row['event_id']} recorded before it occurred"
        )


def _identity_records(directory: Path, *, python_values: bool) -> pd.DataFrame | None:
    """``identity_records`` when the extract has it (checked like the others), else None."""
    table = IDENTITY_TABLE
    if not (directory / f"{table}.parquet").exists() and not (directory / f"{table}.csv").exists():
        return None
    if not python_values and not (directory / f"{table}.parquet").exists():
        raise ExtractError(table, None, f"typed columns need {table}.parquet, not CSV")
    return validate_table(table, read_table(directory, table), keep=python_values)


def _people_tables(
    directory: Path, children: pd.DataFrame, *, python_values: bool
) -> dict[str, pd.DataFrame]:
    """``persons`` and ``household_memberships``: read when the extract has them, else derived."""
    present = [
        table
        for table in PEOPLE_TABLES
        if (directory / f"{table}.parquet").exists() or (directory / f"{table}.csv").exists()
    ]
    if not present:
        derived = derive_people(children)
        if python_values:
            return {table: validate_table(table, frame) for table, frame in derived.items()}
        return derived
    if len(present) == 1:
        missing = next(table for table in PEOPLE_TABLES if table not in present)
        raise ExtractError(missing, None, f"{present[0]} is present, so {missing} must be too")
    frames: dict[str, pd.DataFrame] = {}
    for table in PEOPLE_TABLES:
        if not python_values and not (directory / f"{table}.parquet").exists():
            raise ExtractError(table, None, f"typed columns need {table}.parquet, not CSV")
        frames[table] = validate_table(table, read_table(directory, table), keep=python_values)
    return frames


def derive_people(children: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Persons and memberships for an extract without them: each child in its household since
    birth (the meaning of ``children.household_id`` before vocabulary 2)."""
    children = children.reset_index(drop=True)
    born = pd.to_datetime(pd.Series(children["date_of_birth"], dtype=object)).dt.as_unit("us")
    persons = pd.DataFrame(
        {
            "person_id": children["child_id"],
            "is_child": True,
            "given_name": children["given_name"],
            "family_name": children["family_name"],
            "date_of_birth": born.dt.date,
            "sex": children["sex"],
            "synthetic": children["synthetic"],
        }
    )
    memberships = pd.DataFrame(
        {
            "membership_id": CHILD_MEMBERSHIP_PREFIX + children["child_id"].astype(str),
            "person_id": children["child_id"],
            "household_id": children["household_id"],
            "role": HouseholdRole.child.value,
            "joined_at": born.dt.tz_localize("UTC"),
            "left_at": pd.Series(pd.NaT, index=children.index, dtype="datetime64[us, UTC]"),
            "synthetic": children["synthetic"],
        }
    )
    return {"persons": persons, "household_memberships": memberships}


def _manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():  # a council's export need not carry one
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ExtractError("manifest", None, f"{path.name} is not JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise ExtractError("manifest", None, f"{path.name} is not a JSON object")
    return manifest


def read_identity_records(directory: Path) -> pd.DataFrame | None:
    """The extract's identity records as Python values, None when it has none (optional)."""
    return _identity_records(Path(directory), python_values=True)
