"""How the compiled SQL is spelled on each engine: the few functions standard SQL lacks.

The compiler writes standard SQL (joins, ``CASE``, ``SUM``/``MAX``/``COUNT(DISTINCT)``,
``GROUP BY``, ``GREATEST``, ``UNION``) and asks a dialect only for these: milliseconds since
the epoch (floored), the UTC day of a millisecond time, date parts, and whether a
``;``-joined list holds an item.
"""

from __future__ import annotations

from dataclasses import dataclass

from triage.vocab import LIST_SEPARATOR


def literal(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Dialect:
    """An engine's spelling of the non-standard pieces (this base class: DuckDB)."""

    name: str = "duckdb"
    string_type: str = "VARCHAR"
    timestamp_type: str = "TIMESTAMPTZ"
    create_view: str = "CREATE VIEW"

    def floor_ms(self, ts: str) -> str:
        """Milliseconds since the epoch, FLOORED, of a timestamp expression.

        DuckDB's own ``epoch_ms`` rounds to the nearest ms and ``//`` truncates towards zero,
        so the remainder is taken off first (floors negative times too).
        """
        us = f"epoch_us({ts})"
        return f"(({us} - ((({us} % 1000) + 1000) % 1000)) // 1000)"

    def day_of_ms(self, ms: str) -> str:
        """The UTC calendar date of a millisecond time (floored to the day)."""
        day = f"(({ms} - ((({ms} % 86400000) + 86400000) % 86400000)) // 86400000)"
        return f"(DATE '1970-01-01' + CAST({day} AS INTEGER))"

    def as_date(self, value: str) -> str:
        """A date column (or a UTC timestamp) as a DATE."""
        return f"CAST({value} AS DATE)"

    def list_has(self, joined: str, item: str) -> str:
        """Whether a ``;``-joined list column holds ``item`` exactly."""
        return (
            f"list_contains(string_split(coalesce({joined}, ''), {literal(LIST_SEPARATOR)}), "
            f"{literal(item)})"
        )


@dataclass(frozen=True)
class SparkDialect(Dialect):
    """Spark SQL's spelling (run by ``features.sql.spark``)."""

    name: str = "spark"
    string_type: str = "STRING"
    timestamp_type: str = "TIMESTAMP"
    create_view: str = "CREATE OR REPLACE TEMPORARY VIEW"

    def floor_ms(self, ts: str) -> str:
        """Milliseconds since the epoch, floored (``unix_micros`` is exact; ``div`` truncates)."""
        us = f"unix_micros({ts})"
        return f"(({us} - pmod({us}, 1000)) div 1000)"

    def day_of_ms(self, ms: str) -> str:
        """The UTC calendar date of a millisecond time."""
        return (
            f"date_add(DATE '1970-01-01', CAST(({ms} - pmod({ms}, 86400000)) div 86400000 AS INT))"
        )

    def list_has(self, joined: str, item: str) -> str:
        """Whether a ``;``-joined list column holds ``item`` exactly."""
        parts = f"split(coalesce({joined}, ''), {literal(LIST_SEPARATOR)})"
        return f"array_contains({parts}, {literal(item)})"


DUCKDB = Dialect()
SPARK = SparkDialect()
DIALECTS: dict[str, Dialect] = {"duckdb": DUCKDB, "spark": SPARK}
