"""Household members known to the referrer: ``referrals.household_members``.

The people a referral says live with the child (name, role, optional date of birth and
person id), kept as the referral sent them: what the referrer knows, never a verified
household membership. Null for referrals stored before, and for extracts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add referrals.household_members (null for what is stored)."""
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("household_members", _json()))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("household_members")
