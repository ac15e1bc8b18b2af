"""The queue's look-by order: ``queue_entries.rank_at`` and an index by child.

A scored referral is ordered by its look-by time (receipt plus its band's hours, see
``triage.queue.BAND_LOOK_HOURS``), so waiting lifts it above later arrivals of any band; every
scored referral without a safety flag now shares one tier. Entries already queued are given
their look-by time and tier here.

Revision ID: 0015
Revises: 0014 (decision priority)
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from triage.store.coltypes import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As triage.queue in this revision (a migration does not follow later changes to the rules).
_LOOK_HOURS = {"Review first": 0.0, "Elevated": 8.0, "Standard": 16.0, "Lower": 24.0}
_SCORED = 3


def upgrade() -> None:
    """Add the column and indexes, then give every queued referral its tier and look-by time."""
    with op.batch_alter_table("queue_entries") as batch:
        batch.add_column(sa.Column("rank_at", UTCDateTime()))
    op.create_index(
        op.f("ix_queue_entries_tier_rank_at_sort_probability_referral_id"),
        "queue_entries",
        ["tier", "rank_at", "sort_probability", "referral_id"],
    )
    op.create_index(op.f("ix_queue_entries_child_id"), "queue_entries", ["child_id"])
    entries = sa.table(
        "queue_entries",
        sa.column("referral_id", sa.String()),
        sa.column("tier", sa.Integer()),
        sa.column("band", sa.String()),
        sa.column("received_at", UTCDateTime()),
        sa.column("rank_at", UTCDateTime()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(entries.c.referral_id, entries.c.tier, entries.c.band, entries.c.received_at)
    ).all()
    for referral_id, tier, band, received_at in rows:
        scored = tier >= _SCORED and band is not None
        hours = _LOOK_HOURS.get(band, max(_LOOK_HOURS.values())) if scored else 0.0
        connection.execute(
            entries.update()
            .where(entries.c.referral_id == referral_id)
            .values(
                tier=_SCORED if tier >= _SCORED else tier,
                rank_at=received_at + timedelta(hours=hours),
            )
        )
    with op.batch_alter_table("queue_entries") as batch:
        batch.alter_column("rank_at", existing_type=UTCDateTime(), nullable=False)


def downgrade() -> None:
    """Drop the indexes and the column (tiers by band come back when entries are rescored)."""
    op.drop_index(op.f("ix_queue_entries_child_id"), table_name="queue_entries")
    op.drop_index(
        op.f("ix_queue_entries_tier_rank_at_sort_probability_referral_id"),
        table_name="queue_entries",
    )
    with op.batch_alter_table("queue_entries") as batch:
        batch.drop_column("rank_at")
