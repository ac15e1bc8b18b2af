"""Creating users and API keys, each recorded in the audit log."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from triage.security import (
    SCOPES,
    USER_ROLES,
    NewApiKey,
    hash_password,
    new_api_key,
    new_id,
)
from triage.store import (
    UserRow,
    add_api_key,
    add_audit_event,
    add_user,
    get_user_by_username,
    revoke_api_key,
    set_password_hash,
)
from triage.store.tables import utcnow
from triage.vocab import Agency

MIN_PASSWORD_CHARS = 12


class AccountError(ValueError):
    """A user or key that cannot be created as asked."""


def create_user(
    session: Session, *, username: str, password: str, roles: Sequence[str], actor: str = "cli"
) -> UserRow:
    """Add a user with an argon2 password hash; the caller commits."""
    unknown = set(roles) - set(USER_ROLES)
    if not roles or unknown:
        raise AccountError(f"roles must be some of {list(USER_ROLES)}, not {sorted(roles)}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if get_user_by_username(session, username=username) is not None:
        raise AccountError(f"there is already a user called {username!r}")
    row = add_user(
        session,
        user_id=new_id("U"),
        username=username,
        password_hash=hash_password(password),
        roles=roles,
    )
    add_audit_event(
        session,
        actor=actor,
        action="user.created",
        entity_type="user",
        entity_id=row.user_id,
        payload={"roles": sorted(row.roles)},
    )
    return row


def create_api_key(
    session: Session,
    *,
    name: str,
    source_system: str,
    scopes: Sequence[str] = SCOPES,
    agencies: Sequence[str] = (),
    actor: str = "cli",
) -> NewApiKey:
    """Add an API key bound to ``source_system`` and the ``agencies`` whose events it may post.

    The key is returned once, never stored. No agencies: the key's events are all refused.
    """
    unknown = set(scopes) - set(SCOPES)
    if not scopes or unknown:
        raise AccountError(f"scopes must be some of {list(SCOPES)}, not {sorted(scopes)}")
    known_agencies = [str(agency) for agency in Agency]
    if set(agencies) - set(known_agencies):
        raise AccountError(f"agencies must be some of {known_agencies}, not {sorted(agencies)}")
    key = new_api_key()
    add_api_key(
        session,
        key_id=key.key_id,
        key_hash=key.key_hash,
        name=name,
        source_system=source_system,
        scopes=scopes,
        agencies=agencies,
    )
    add_audit_event(
        session,
        actor=actor,
        action="key.created",
        entity_type="api_key",
        entity_id=key.key_id,
        payload={
            "source_system": source_system,
            "scopes": sorted(set(scopes)),
            "agencies": sorted(set(agencies)),
        },
    )
    return key


def revoke_key(session: Session, *, key_id: str, actor: str = "cli") -> bool:
    """Revoke a key (recorded); False when there is no such key."""
    if not revoke_api_key(session, key_id=key_id):
        return False
    add_audit_event(
        session,
        actor=actor,
        action="key.revoked",
        entity_type="api_key",
        entity_id=key_id,
        payload={},
    )
    return True


def sign_out(session: Session, *, user_id: str, at: datetime, channel: str = "page") -> None:
    """Refuse every page session and bearer token of ``user_id`` issued by ``at`` (recorded)."""
    user = session.get(UserRow, user_id)
    if user is None:
        return
    user.sessions_valid_after = at
    add_audit_event(
        session,
        actor=user_id,
        action="auth.logout",
        entity_type="user",
        entity_id=user_id,
        payload={"channel": channel},
    )


def set_password(session: Session, *, username: str, password: str, actor: str = "cli") -> UserRow:
    """Give a user a new password and revoke every session and token issued before (recorded)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    user = get_user_by_username(session, username=username)
    if user is None:
        raise AccountError(f"there is no user called {username!r}")
    set_password_hash(session, user_id=user.user_id, password_hash=hash_password(password))
    # A new password is usually a response to a leak: whatever was signed in before goes.
    user.sessions_valid_after = utcnow()
    add_audit_event(
        session,
        actor=actor,
        action="user.password_reset",
        entity_type="user",
        entity_id=user.user_id,
        payload={},
    )
    return user


DEMO_ROLES = ("practitioner", "manager", "researcher", "admin")
DEMO_SOURCE_SYSTEM = "police-mash-feed"


def demo_accounts(session: Session) -> tuple[dict[str, str], NewApiKey]:
    """One ``demo-<role>`` user per role (fresh passwords each run) and a new demo key."""
    passwords: dict[str, str] = {}
    for role in DEMO_ROLES:
        username = f"demo-{role}"
        password = secrets.token_urlsafe(12)
        existing = get_user_by_username(session, username=username)
        if existing is None:
            create_user(session, username=username, password=password, roles=[role], actor="demo")
        else:
            set_password(session, username=username, password=password, actor="demo")
        passwords[username] = password
    # The demo feed plays every partner agency, so the demo can post any event.
    key = create_api_key(
        session,
        name="demo referral system",
        source_system=DEMO_SOURCE_SYSTEM,
        agencies=[str(agency) for agency in Agency],
        actor="demo",
    )
    return passwords, key
