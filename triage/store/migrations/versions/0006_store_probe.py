"""The store probe: one row /readyz rewrites, while writes fail, to learn they work again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create store_probes with its one row."""
    table = op.create_table(
        "store_probes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_probes")),
    )
    op.execute(table.insert().values(id=1, probed_at=sa.func.now()))


def downgrade() -> None:
    """Drop store_probes."""
    op.drop_table("store_probes")
