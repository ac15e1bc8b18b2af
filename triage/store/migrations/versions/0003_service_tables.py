"""Service tables: idempotency keys, the review queue and disputes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(64)
VOCAB = sa.String(40)
NAME = sa.String(100)
HASH = sa.String(64)
KEY = sa.String(255)


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the service tables."""
    op.create_table(
        "idempotency_keys",
        sa.Column("actor", NAME, nullable=False),
        sa.Column("scope", VOCAB, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("request_hash", HASH, nullable=False),
        sa.Column("entity_id", ID, nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", _json(), nullable=True),
        sa.Column("created_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("actor", "scope", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "queue_entries",
        sa.Column("referral_id", ID, nullable=False),
        sa.Column("child_id", ID, nullable=False),
        sa.Column("received_at", _instant(), nullable=False),
        sa.Column("age_months", sa.Integer(), nullable=False),
        sa.Column("concerns", _json(), nullable=False),
        sa.Column("concerns_key", sa.String(1000), nullable=False),
        sa.Column("flags", _json(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("sort_probability", sa.Float(), nullable=False),
        sa.Column("band", VOCAB, nullable=True),
        sa.Column("model_band", VOCAB, nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("probability_low", sa.Float(), nullable=True),
        sa.Column("probability_high", sa.Float(), nullable=True),
        sa.Column("model_version", NAME, nullable=True),
        sa.Column("score_id", sa.Integer(), nullable=True),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.referral_id"],
            name=op.f("fk_queue_entries_referral_id_referrals"),
        ),
        sa.ForeignKeyConstraint(
            ["score_id"], ["scores.id"], name=op.f("fk_queue_entries_score_id_scores")
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_queue_entries")),
    )
    op.create_index(
        op.f("ix_queue_entries_tier_sort_probability_received_at_referral_id"),
        "queue_entries",
        ["tier", "sort_probability", "received_at", "referral_id"],
    )
    op.create_index(op.f("ix_queue_entries_received_at"), "queue_entries", ["received_at"])
    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", ID, nullable=False),
        sa.Column("record_id", ID, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("disputed_by", NAME, nullable=False),
        sa.Column("disputed_at", _instant(), nullable=False),
        sa.Column("model_version", NAME, nullable=True),
        sa.Column("before", _json(), nullable=True),
        sa.Column("after", _json(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.referral_id"],
            name=op.f("fk_disputes_referral_id_referrals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
    )
    op.create_index(op.f("ix_disputes_referral_id"), "disputes", ["referral_id"])


def downgrade() -> None:
    """Drop the service tables."""
    for table in ("disputes", "queue_entries", "idempotency_keys"):
        op.drop_table(table)
