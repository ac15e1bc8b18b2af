"""Monitoring runs: ``monitoring_reports`` (when, the source, the model, the alerts raised).

The summary holds aggregates only (alert counts by kind, the alerts, each signal's latest
PSI); ``/metrics`` and the manager page read the newest row, so every worker shows the same.

Revision ID: 0016
Revises: 0015 (queue rank)
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from triage.store.coltypes import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the table and its index by time."""
    op.create_table(
        "monitoring_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("generated_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=True),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("summary", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_reports")),
    )
    op.create_index(
        op.f("ix_monitoring_reports_generated_at"), "monitoring_reports", ["generated_at"]
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_index(op.f("ix_monitoring_reports_generated_at"), table_name="monitoring_reports")
    op.drop_table("monitoring_reports")
