"""Column types shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

JSONType: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL."""


class NaiveDatetimeError(ValueError):
    """A naive datetime was given where an instant is required."""


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: refuses naive datetimes, stores UTC, reads back aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC; refuse naive ones."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(f"naive datetime {value!r}: timestamps must be tz-aware")
        value = value.astimezone(UTC)
        if type(value) is not datetime:  # e.g. pandas.Timestamp; drivers want the base type
            value = datetime(
                value.year, value.month, value.day, value.hour, value.minute, value.second,
                value.microsecond, tzinfo=UTC,
            )  # fmt: skip
        # SQLite has no zone-aware type; it stores the naive UTC wall time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
