"""Identity resolution: ``identity_records``, ``identity_tasks`` and ``person_merges``.

``identity_records`` holds each agency's view of a person (its client-index entry) and the
person it resolved to; ``identity_tasks`` the "possible same person" reviews;
``person_merges`` each merge with exactly the rows it re-pointed, so it can be undone.

Revision ID: 0011
Revises: 0010 (events.recorded_at)
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from triage.store.coltypes import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the three tables and their indexes."""
    op.create_table(
        "identity_records",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("source_system", sa.String(64), nullable=False),
        sa.Column("source_person_id", sa.String(64), nullable=False),
        sa.Column("given_name", sa.String(100)),
        sa.Column("family_name", sa.String(100)),
        sa.Column("date_of_birth", sa.Date()),
        sa.Column("sex", sa.String(40), nullable=False),
        sa.Column("postcode", sa.String(16)),
        sa.Column("nhs_number", sa.String(10)),
        sa.Column("school", sa.String(100)),
        sa.Column("is_child", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("person_id", sa.String(64)),
        sa.Column("resolution", sa.String(40)),
        sa.Column("match_probability", sa.Float()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_identity_records")),
    )
    op.create_index(
        op.f("ix_identity_records_source_system_source_person_id"),
        "identity_records",
        ["source_system", "source_person_id"],
    )
    op.create_index(op.f("ix_identity_records_person_id"), "identity_records", ["person_id"])
    op.create_index(
        op.f("ix_identity_records_date_of_birth"), "identity_records", ["date_of_birth"]
    )
    op.create_index(op.f("ix_identity_records_nhs_number"), "identity_records", ["nhs_number"])
    op.create_table(
        "identity_tasks",
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.String(64)),
        sa.Column("candidate_person_id", sa.String(64)),
        sa.Column("match_probability", sa.Float()),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("status", sa.String(40), server_default="open", nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'confirmed', 'rejected')", name=op.f("ck_identity_tasks_status")
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["identity_records.record_id"],
            name=op.f("fk_identity_tasks_record_id_identity_records"),
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_identity_tasks")),
    )
    op.create_index(op.f("ix_identity_tasks_record_id"), "identity_tasks", ["record_id"])
    op.create_index(op.f("ix_identity_tasks_referral_id"), "identity_tasks", ["referral_id"])
    op.create_index(
        op.f("ix_identity_tasks_status_task_id"), "identity_tasks", ["status", "task_id"]
    )
    op.create_table(
        "person_merges",
        sa.Column("merge_id", sa.String(64), nullable=False),
        sa.Column("from_person_id", sa.String(64), nullable=False),
        sa.Column("into_person_id", sa.String(64), nullable=False),
        sa.Column("merged_at", UTCDateTime(), nullable=False),
        sa.Column("merged_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("moved", _json(), nullable=False),
        sa.Column("undone_at", UTCDateTime()),
        sa.Column("undone_by", sa.String(100)),
        sa.PrimaryKeyConstraint("merge_id", name=op.f("pk_person_merges")),
    )
    op.create_index(op.f("ix_person_merges_from_person_id"), "person_merges", ["from_person_id"])
    op.create_index(op.f("ix_person_merges_into_person_id"), "person_merges", ["into_person_id"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("person_merges")
    op.drop_table("identity_tasks")
    op.drop_table("identity_records")
