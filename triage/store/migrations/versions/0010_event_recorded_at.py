"""When an event became known: ``events.recorded_at``.

The time the agency shared the record, at or after ``occurred_at``; features count an event
for a referral only when both are before its receipt. Null for events stored before (read as
``occurred_at``). The three history indexes carry it, so the online builder still reads a
history from the index alone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES: dict[str, list[str]] = {
    "ix_events_child_history": [
        "child_id",
        "occurred_at",
        "event_id",
        "household_id",
        "agency",
        "kind",
    ],
    "ix_events_household_history": [
        "household_id",
        "occurred_at",
        "event_id",
        "child_id",
        "agency",
        "kind",
    ],
    "ix_events_person_history": ["person_id", "occurred_at", "event_id", "kind"],
}


def _recreate(extra: list[str]) -> None:
    """Rebuild the history indexes with ``extra`` columns appended."""
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name="events")
        op.create_index(name, "events", [*columns, *extra])


def upgrade() -> None:
    """Add events.recorded_at (null for what is stored) and cover it in the history indexes."""
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("recorded_at", sa.DateTime(timezone=True)))
    _recreate(["recorded_at"])


def downgrade() -> None:
    """Drop the column and restore the indexes."""
    _recreate([])
    with op.batch_alter_table("events") as batch:
        batch.drop_column("recorded_at")
