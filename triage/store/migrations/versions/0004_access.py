"""Access control: users (argon2 password hashes) and API keys (SHA-256 of the key).

Audit events written before the chain existed are chained here, in id order, so that
``triage auditlog verify`` covers them from now on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(64)
NAME = sa.String(100)
HASH = sa.String(64)
KEY = sa.String(255)


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the users and api_keys tables."""
    op.create_table(
        "users",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("password_hash", KEY, nullable=False),
        sa.Column("roles", _json(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", ID, nullable=False),
        sa.Column("key_hash", HASH, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("source_system", ID, nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    _chain_existing_events()


def _chain_existing_events() -> None:
    from triage.store.auditlog import GENESIS, chain_hash, event_document

    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer()),
        sa.column("occurred_at", _instant()),
        sa.column("actor", NAME),
        sa.column("action", sa.String(40)),
        sa.column("entity_type", sa.String(40)),
        sa.column("entity_id", ID),
        sa.column("model_version", NAME),
        sa.column("payload", _json()),
        sa.column("prev_hash", HASH),
        sa.column("hash", HASH),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    prev = GENESIS
    for row in rows:
        document = event_document(
            occurred_at=row["occurred_at"],
            actor=row["actor"],
            action=row["action"],
            entity_type=row["entity_type"],
            entity_id=row["entity_id"],
            model_version=row["model_version"],
            payload=row["payload"],
        )
        digest = chain_hash(prev, document)
        connection.execute(
            events.update().where(events.c.id == row["id"]).values(prev_hash=prev, hash=digest)
        )
        prev = digest


def downgrade() -> None:
    """Drop the users and api_keys tables."""
    for table in ("api_keys", "users"):
        op.drop_table(table)
