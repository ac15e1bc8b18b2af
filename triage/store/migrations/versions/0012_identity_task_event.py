"""Identity tasks opened by agency events: ``identity_tasks.event_id``.

An event may carry a child's details instead of the service's child id; when the details are
close to a known child but not close enough to join, the task names the event that opened it
(``referral_id`` stays null then).

Revision ID: 0012
Revises: 0011 (identity resolution)
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable column and its index."""
    with op.batch_alter_table("identity_tasks") as batch:
        batch.add_column(sa.Column("event_id", sa.String(64)))
    op.create_index(op.f("ix_identity_tasks_event_id"), "identity_tasks", ["event_id"])


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index(op.f("ix_identity_tasks_event_id"), table_name="identity_tasks")
    with op.batch_alter_table("identity_tasks") as batch:
        batch.drop_column("event_id")
