"""Initial schema: households, children, referrals, events, decisions, outcomes, scores, audit.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(64)
VOCAB = sa.String(40)
NAME = sa.String(100)
HASH = sa.String(64)


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the initial tables."""
    op.create_table(
        "households",
        sa.Column("household_id", ID, nullable=False),
        sa.Column("deprivation_decile", sa.Integer(), nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "deprivation_decile BETWEEN 1 AND 10", name=op.f("ck_households_deprivation_decile")
        ),
        sa.PrimaryKeyConstraint("household_id", name=op.f("pk_households")),
    )
    op.create_table(
        "children",
        sa.Column("child_id", ID, nullable=False),
        sa.Column("household_id", ID, nullable=False),
        sa.Column("given_name", NAME, nullable=False),
        sa.Column("family_name", NAME, nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("sex", VOCAB, nullable=False),
        sa.Column("ethnicity", VOCAB, nullable=False),
        sa.Column("disability", sa.Boolean(), nullable=False),
        sa.Column("deprivation_decile", sa.Integer(), nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.CheckConstraint(
            "deprivation_decile BETWEEN 1 AND 10", name=op.f("ck_children_deprivation_decile")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.household_id"],
            name=op.f("fk_children_household_id_households"),
        ),
        sa.PrimaryKeyConstraint("child_id", name=op.f("pk_children")),
    )
    op.create_index(op.f("ix_children_household_id"), "children", ["household_id"])
    op.create_table(
        "referrals",
        sa.Column("referral_id", ID, nullable=False),
        sa.Column("source_system", ID, nullable=False),
        sa.Column("source_referral_id", ID, nullable=False),
        sa.Column("child_id", ID, nullable=False),
        sa.Column("household_id", ID, nullable=False),
        sa.Column("received_at", _instant(), nullable=False),
        sa.Column("referrer_type", VOCAB, nullable=False),
        sa.Column("referrer_relationship", VOCAB, nullable=True),
        sa.Column("referrer_id", ID, nullable=True),
        sa.Column("concerns", _json(), nullable=False),
        sa.Column("injury_reported", sa.Boolean(), nullable=False),
        sa.Column("injury_sites", _json(), nullable=False),
        sa.Column("injury_photographed", sa.Boolean(), nullable=False),
        sa.Column("narrative", sa.Text(), nullable=False),
        sa.Column("status", VOCAB, server_default="open", nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'decided')", name=op.f("ck_referrals_status")),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_referrals_child_id_children")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.household_id"],
            name=op.f("fk_referrals_household_id_households"),
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_referrals")),
        sa.UniqueConstraint(
            "source_system",
            "source_referral_id",
            name=op.f("uq_referrals_source_system_source_referral_id"),
        ),
    )
    op.create_index(
        op.f("ix_referrals_child_id_received_at"), "referrals", ["child_id", "received_at"]
    )
    op.create_index(
        op.f("ix_referrals_household_id_received_at"), "referrals", ["household_id", "received_at"]
    )
    op.create_index(op.f("ix_referrals_status_received_at"), "referrals", ["status", "received_at"])
    op.create_table(
        "events",
        sa.Column("event_id", ID, nullable=False),
        sa.Column("source_system", ID, nullable=False),
        sa.Column("source_event_id", ID, nullable=False),
        sa.Column("child_id", ID, nullable=True),
        sa.Column("household_id", ID, nullable=True),
        sa.Column("occurred_at", _instant(), nullable=False),
        sa.Column("agency", VOCAB, nullable=False),
        sa.Column("kind", VOCAB, nullable=False),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.child_id"], name=op.f("fk_events_child_id_children")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.household_id"],
            name=op.f("fk_events_household_id_households"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
        sa.UniqueConstraint(
            "source_system", "source_event_id", name=op.f("uq_events_source_system_source_event_id")
        ),
    )
    op.create_index(op.f("ix_events_child_id_occurred_at"), "events", ["child_id", "occurred_at"])
    op.create_index(
        op.f("ix_events_household_id_occurred_at"), "events", ["household_id", "occurred_at"]
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", ID, nullable=False),
        sa.Column("decided_at", _instant(), nullable=False),
        sa.Column("decision", VOCAB, nullable=False),
        sa.Column("agreement", VOCAB, nullable=True),
        sa.Column("reason_codes", _json(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("decided_by", ID, nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.referral_id"],
            name=op.f("fk_decisions_referral_id_referrals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(op.f("ix_decisions_referral_id"), "decisions", ["referral_id"])
    op.create_table(
        "outcomes",
        sa.Column("referral_id", ID, nullable=False),
        sa.Column("highest_level", VOCAB, nullable=False),
        sa.Column("investigated_12m", sa.Boolean(), nullable=False),
        sa.Column("significant_harm_12m", sa.Boolean(), nullable=False),
        sa.Column("cp_category", VOCAB, nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.referral_id"],
            name=op.f("fk_outcomes_referral_id_referrals"),
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_outcomes")),
    )
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", ID, nullable=False),
        sa.Column("scored_at", _instant(), nullable=False),
        sa.Column("model_version", NAME, nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("probability_low", sa.Float(), nullable=False),
        sa.Column("probability_high", sa.Float(), nullable=False),
        sa.Column("band", VOCAB, nullable=False),
        sa.Column("flags", _json(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.CheckConstraint(
            "0 <= probability_low AND probability_low <= probability"
            " AND probability <= probability_high AND probability_high <= 1",
            name=op.f("ck_scores_probability_interval"),
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.referral_id"], name=op.f("fk_scores_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
    )
    op.create_index(op.f("ix_scores_referral_id_scored_at"), "scores", ["referral_id", "scored_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("occurred_at", _instant(), nullable=False),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("action", VOCAB, nullable=False),
        sa.Column("entity_type", VOCAB, nullable=False),
        sa.Column("entity_id", ID, nullable=True),
        sa.Column("model_version", NAME, nullable=True),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("prev_hash", HASH, nullable=True),
        sa.Column("hash", HASH, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop the initial tables."""
    for table in (
        "audit_events",
        "scores",
        "outcomes",
        "decisions",
        "events",
        "referrals",
        "children",
        "households",
    ):
        op.drop_table(table)
