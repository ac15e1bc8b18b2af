"""The practitioner's own priority: ``decisions.priority``, ``priority_judgements``, team settings.

``decisions.priority`` is the practitioner's own priority on the four bands (the stored
``agreement`` is derived from it against the band); ``decisions.priority_before_band`` says
whether it was recorded before the band was shown. ``priority_judgements`` holds a priority
recorded before the band is shown ("judge first" mode), and ``team_settings`` the team's mode.

Revision ID: 0014
Revises: 0013 (multi-agency checks)
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triage.store.coltypes import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two decision columns (null for what is stored) and the two tables."""
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("priority", sa.String(40)))
        batch.add_column(sa.Column("priority_before_band", sa.Boolean()))
    op.create_table(
        "priority_judgements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=False),
        sa.Column("judged_by", sa.String(100), nullable=False),
        sa.Column("priority", sa.String(40), nullable=False),
        sa.Column("judged_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.referral_id"],
            name=op.f("fk_priority_judgements_referral_id_referrals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_priority_judgements")),
        sa.UniqueConstraint(
            "referral_id", "judged_by", name=op.f("uq_priority_judgements_referral_id_judged_by")
        ),
    )
    op.create_table(
        "team_settings",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.String(40), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("changed_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_team_settings")),
    )


def downgrade() -> None:
    """Drop the two tables and the two columns."""
    op.drop_table("team_settings")
    op.drop_table("priority_judgements")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("priority_before_band")
        batch.drop_column("priority")
