"""Run the compiled catalogue on an engine: DuckDB over an extract's Parquet files.

DuckDB reads the Parquet files where they lie (views, not copies) and spills to
``temp_directory`` past ``memory_limit``, so an extract larger than memory still builds on one
machine. The relations it reads are views over the tables (``features.sql.sources``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from features.catalogue import CATALOGUE, Signal
from features.sql.compiler import compile_signals
from features.sql.dialect import DUCKDB, literal
from features.sql.sources import source_views

if TYPE_CHECKING:
    import duckdb


def connect(
    threads: int = 2, memory_limit: str | None = None, temp_directory: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC, spilling to ``temp_directory`` past the limit."""
    import duckdb

    config: dict[str, str | bool | int | float | list[str]] = {"threads": threads}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def _source_views(con: duckdb.DuckDBPyConnection, read: Callable[[str], str | None]) -> None:
    """The ``src_*`` views (``features.sql.sources``) over tables ``read(name)`` gives."""
    for statement in source_views(read, lambda relation: _columns(con, relation), DUCKDB):
        con.execute(statement)


def _run(con: duckdb.DuckDBPyConnection, signals: tuple[Signal, ...]) -> pd.DataFrame:
    compiled = compile_signals(signals, DUCKDB)
    frame = con.execute(compiled.sql).df()
    frame = frame.set_index("referral_id")
    return frame.astype("float64")


def build_features(
    extract_dir: Path,
    engine: str = "duckdb",
    signals: tuple[Signal, ...] = CATALOGUE,
    *,
    threads: int = 2,
    memory_limit: str | None = None,
    temp_directory: Path | None = None,
) -> pd.DataFrame:
    """Every signal for every referral of an extract directory, computed by an SQL engine."""
    if engine != "duckdb":
        raise ValueError(f"engine {engine!r}: the SQL engines available are 'duckdb'")
    directory = Path(extract_dir)

    def read(table: str) -> str | None:
        path = directory / f"{table}.parquet"
        if not path.exists():
            return None
        if table == "referrals":  # its row number: the output keeps the referrals' order
            return (
                "(SELECT *, file_row_number AS row_order FROM "
                f"read_parquet({literal(path.as_posix())}, file_row_number = true))"
            )
        return f"read_parquet({literal(path.as_posix())})"

    con = connect(threads, memory_limit, temp_directory)
    try:
        _source_views(con, read)
        return _run(con, signals)
    finally:
        con.close()


def build_features_from_frames(
    children: pd.DataFrame,
    referrals: pd.DataFrame,
    events: pd.DataFrame,
    decisions: pd.DataFrame,
    signals: tuple[Signal, ...] = CATALOGUE,
    *,
    persons: pd.DataFrame | None = None,
    memberships: pd.DataFrame | None = None,
    threads: int = 2,
) -> pd.DataFrame:
    """The same query over in-memory frames (the numpy builder's arguments), for tests."""
    con = connect(threads)
    frames = {
        "children": children,
        "referrals": referrals.assign(row_order=range(len(referrals))),
        "events": events,
        "decisions": decisions,
        "household_memberships": memberships,
        "persons": persons,
    }
    try:
        for name, frame in frames.items():
            if frame is not None:
                con.register(f"frame_{name}", frame)
        _source_views(con, lambda t: f"frame_{t}" if frames.get(t) is not None else None)
        return _run(con, signals)
    finally:
        con.close()
