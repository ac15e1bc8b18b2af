"""Revocable page sessions: users.sessions_valid_after.

Signing out sets it, so a copied session cookie stops working at once on every device.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add users.sessions_valid_after (null: every unexpired session is valid)."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("sessions_valid_after", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Drop users.sessions_valid_after."""
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sessions_valid_after")
