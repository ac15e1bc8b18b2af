"""Users and API keys (hashes only; the caller hashes)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from triage.store.tables import ApiKeyRow, UserRow


def add_user(
    session: Session, *, user_id: str, username: str, password_hash: str, roles: Sequence[str]
) -> UserRow:
    """Add a user (the caller hashes the password)."""
    row = UserRow(
        user_id=user_id,
        username=username,
        password_hash=password_hash,
        roles=sorted(set(roles)),
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def get_user(session: Session, *, user_id: str) -> UserRow | None:
    """A user by id."""
    return session.get(UserRow, user_id)


def get_user_by_username(session: Session, *, username: str) -> UserRow | None:
    """A user by username."""
    return session.scalars(select(UserRow).where(UserRow.username == username)).first()


def add_api_key(
    session: Session,
    *,
    key_id: str,
    key_hash: str,
    name: str,
    source_system: str,
    scopes: Sequence[str],
    agencies: Sequence[str] = (),
) -> ApiKeyRow:
    """Add an API key by its hash (the key itself is never stored)."""
    row = ApiKeyRow(
        key_id=key_id,
        key_hash=key_hash,
        name=name,
        source_system=source_system,
        scopes=sorted(set(scopes)),
        agencies=sorted(set(agencies)),
        active=True,
    )
    session.add(row)
    session.flush()
    return row


_API_KEY_BY_HASH = select(ApiKeyRow).where(ApiKeyRow.key_hash == bindparam("key_hash"))


def get_api_key_by_hash(session: Session, *, key_hash: str) -> ApiKeyRow | None:
    """An API key by the SHA-256 of the key."""
    # Prebuilt: every request with an API key runs this.
    return session.scalars(_API_KEY_BY_HASH, {"key_hash": key_hash}).first()


def revoke_api_key(session: Session, *, key_id: str) -> bool:
    """Deactivate a key; False when there is no such key."""
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        return False
    row.active = False
    session.flush()
    return True


def set_password_hash(session: Session, *, user_id: str, password_hash: str) -> None:
    """Replace a user's password hash."""
    session.execute(
        update(UserRow).where(UserRow.user_id == user_id).values(password_hash=password_hash)
    )
