"""Feed isolation: the agencies an API key reports for; identity details to confirm.

``api_keys.agencies``: the agencies whose events a key may post. Keys that exist before this
migration get none (``[]``): they keep submitting referrals, but their events are refused
(403) until an administrator creates a key with ``--agency`` and revokes the old one. A key
that could speak for any agency is what let one feed move another's referrals.

``referrals.child_as_sent``: the child's details as this referral sent them (null for
referrals stored before, and for extracts). ``referrals.identity_mismatch``: the fields of
those details (given_name, family_name, date_of_birth) that contradict the stored child, for
a person to confirm; null when they agree.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add api_keys.agencies (existing keys: none) and the referral identity columns."""
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("agencies", _json(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("child_as_sent", _json()))
        batch.add_column(sa.Column("identity_mismatch", _json()))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("identity_mismatch")
        batch.drop_column("child_as_sent")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("agencies")
