"""People in the household: persons, household memberships and events about a person.

``persons`` holds every child (``person_id`` = ``child_id``) and every adult;
``household_memberships`` says who lived where, in which role, from when until when;
``events.person_id`` names the adult an event is about. Children stored before this migration
become persons with one open membership of their household, from their date of birth.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triage.store.coltypes import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the two tables, add events.person_id and back-fill the children."""
    op.create_table(
        "persons",
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("is_child", sa.Boolean(), nullable=False),
        sa.Column("given_name", sa.String(100)),
        sa.Column("family_name", sa.String(100)),
        sa.Column("date_of_birth", sa.Date()),
        sa.Column("sex", sa.String(40), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_persons")),
    )
    op.create_table(
        "household_memberships",
        sa.Column("membership_id", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.Column("left_at", UTCDateTime()),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "left_at IS NULL OR left_at >= joined_at",
            name=op.f("ck_household_memberships_left_after_joined"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.person_id"],
            name=op.f("fk_household_memberships_person_id_persons"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.household_id"],
            name=op.f("fk_household_memberships_household_id_households"),
        ),
        sa.PrimaryKeyConstraint("membership_id", name=op.f("pk_household_memberships")),
    )
    op.create_index(
        "ix_household_memberships_household", "household_memberships", ["household_id", "joined_at"]
    )
    op.create_index(
        "ix_household_memberships_person", "household_memberships", ["person_id", "joined_at"]
    )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("person_id", sa.String(64)))
        batch.create_foreign_key(
            op.f("fk_events_person_id_persons"), "persons", ["person_id"], ["person_id"]
        )
    op.create_index(
        "ix_events_person_history", "events", ["person_id", "occurred_at", "event_id", "kind"]
    )
    _backfill_children()


def _backfill_children() -> None:
    """Each stored child becomes a person living in its household since birth."""
    op.execute(
        "INSERT INTO persons (person_id, is_child, given_name, family_name, date_of_birth, sex,"
        " synthetic) SELECT child_id, TRUE, given_name, family_name, date_of_birth, sex,"
        " synthetic FROM children"
    )
    # SQLite stores naive UTC wall time as text; PostgreSQL casts the date to midnight UTC.
    born = (
        "date_of_birth || ' 00:00:00.000000'"
        if op.get_bind().dialect.name == "sqlite"
        else "CAST(date_of_birth AS TIMESTAMP) AT TIME ZONE 'UTC'"
    )
    op.execute(
        "INSERT INTO household_memberships (membership_id, person_id, household_id, role,"
        f" joined_at, left_at, synthetic) SELECT 'child:' || child_id, child_id, household_id,"
        f" 'child', {born}, NULL, synthetic FROM children"
    )


def downgrade() -> None:
    """Drop events.person_id and the two tables."""
    op.drop_index("ix_events_person_history", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint(op.f("fk_events_person_id_persons"), type_="foreignkey")
        batch.drop_column("person_id")
    op.drop_index("ix_household_memberships_person", table_name="household_memberships")
    op.drop_index("ix_household_memberships_household", table_name="household_memberships")
    op.drop_table("household_memberships")
    op.drop_table("persons")
