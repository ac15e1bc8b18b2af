"""Multi-agency checks: requests for information, strategy discussions, facts, sign-offs.

``check_requests`` holds each request to an agency and its reply; ``strategy_discussions``
who attended by agency and the outcome; ``check_facts`` what was found out first hand (the
child seen, the carer's account corroborated...); ``sign_offs`` the decisions a manager signs
off before the referral leaves the queue.

Revision ID: 0013
Revises: 0012 (identity tasks opened by agency events)
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from triage.store.coltypes import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _referral_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["referral_id"],
        ["referrals.referral_id"],
        name=op.f(f"fk_{table}_referral_id_referrals"),
    )


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "check_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(40), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("replied_at", UTCDateTime()),
        sa.Column("reply_outcome", sa.String(40)),
        sa.Column("reply_summary", sa.Text()),
        sa.Column("replied_by", sa.String(100)),
        sa.Column("reply_channel", sa.String(40)),
        _referral_fk("check_requests"),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_check_requests")),
    )
    op.create_index(
        op.f("ix_check_requests_referral_id_requested_at"),
        "check_requests",
        ["referral_id", "requested_at"],
    )
    op.create_index(
        op.f("ix_check_requests_agency_replied_at_due_at"),
        "check_requests",
        ["agency", "replied_at", "due_at"],
    )
    op.create_table(
        "strategy_discussions",
        sa.Column("discussion_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=False),
        sa.Column("held_at", UTCDateTime(), nullable=False),
        sa.Column("attendees", _json(), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        _referral_fk("strategy_discussions"),
        sa.PrimaryKeyConstraint("discussion_id", name=op.f("pk_strategy_discussions")),
    )
    op.create_index(
        op.f("ix_strategy_discussions_referral_id_held_at"),
        "strategy_discussions",
        ["referral_id", "held_at"],
    )
    op.create_table(
        "check_facts",
        sa.Column("fact_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("value", sa.String(40), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        _referral_fk("check_facts"),
        sa.PrimaryKeyConstraint("fact_id", name=op.f("pk_check_facts")),
    )
    op.create_index(
        op.f("ix_check_facts_referral_id_kind_recorded_at"),
        "check_facts",
        ["referral_id", "kind", "recorded_at"],
    )
    op.create_table(
        "sign_offs",
        sa.Column("sign_off_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("note", sa.Text()),
        sa.CheckConstraint(
            "status IN ('awaiting', 'signed_off', 'sent_back', 'superseded')",
            name=op.f("ck_sign_offs_status"),
        ),
        _referral_fk("sign_offs"),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_sign_offs_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("sign_off_id", name=op.f("pk_sign_offs")),
    )
    op.create_index(op.f("ix_sign_offs_referral_id"), "sign_offs", ["referral_id"])
    op.create_index(
        op.f("ix_sign_offs_status_requested_at"), "sign_offs", ["status", "requested_at"]
    )


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_table("sign_offs")
    op.drop_table("check_facts")
    op.drop_table("strategy_discussions")
    op.drop_table("check_requests")
