"""Credentials: argon2 password hashes, hashed API keys with scopes, signed user tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

USER_ROLES = ("practitioner", "manager", "researcher", "admin")
"""Roles a person can hold; ``referrer`` belongs to API keys only."""

SCOPES = ("referrals:write", "events:write", "referrals:read", "checks:reply")
"""What an API key may do; a key holds the ``referrer`` role with some of these (``checks:reply``:
answer requests for information to the agencies the key reports for)."""

KEY_PREFIX = "trk_"
TOKEN_SALT = "triage.user-token.v1"
TOKEN_MAX_AGE_SECONDS = 8 * 60 * 60
"""A working day: a user signs in again after that."""

_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps the reply time the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an unknown user (None) costs the same and fails."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_id(prefix: str) -> str:
    """A random, unguessable id such as ``U-3fa9c1d2e4b5a6f7``."""
    return f"{prefix}-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class NewApiKey:
    """A freshly made key: shown once, only ``key_hash`` is stored."""

    key_id: str
    key: str
    key_hash: str


def hash_api_key(key: str) -> str:
    """SHA-256 (hex) of an API key; the key has 256 random bits, so no slow hash is needed."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> NewApiKey:
    """A new key id and a 256-bit random key."""
    key_id = new_id("K")
    key = f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
    return NewApiKey(key_id=key_id, key=key, key_hash=hash_api_key(key))


def is_api_key(credential: str) -> bool:
    """True when the bearer credential has the shape of an API key."""
    return credential.startswith(KEY_PREFIX)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=TOKEN_SALT)


@dataclass(frozen=True)
class UserToken:
    """What a valid user token says: whose it is and when it was issued."""

    user_id: str
    issued_at: float
    """Seconds since the epoch (sub-second, so a sign-in just after a sign-out survives it)."""


def issue_user_token(secret: str, *, user_id: str, issued_at: float | None = None) -> str:
    """A signed, timestamped bearer token naming the user and the moment it was issued.

    ``issued_at``: when the credentials it rests on were read (default now); revocation after
    that moment refuses the token.
    """
    if not secret:
        raise ValueError("no secret key to sign tokens with")
    iat = time.time() if issued_at is None else issued_at
    return _serializer(secret).dumps({"uid": user_id, "iat": iat})


def read_user_token(
    secret: str, token: str, *, max_age: int = TOKEN_MAX_AGE_SECONDS
) -> UserToken | None:
    """The user and issue time a token names, or None when it is forged, malformed or expired."""
    if not secret:
        return None
    try:
        data, signed_at = _serializer(secret).loads(token, max_age=max_age, return_timestamp=True)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), str):
        return None
    issued_at = data.get("iat")
    if not isinstance(issued_at, int | float) or isinstance(issued_at, bool):
        # Tokens issued before the claim existed: the signature's whole-second timestamp.
        issued_at = signed_at.timestamp()
    return UserToken(user_id=data["uid"], issued_at=float(issued_at))


def revoked(issued_at: float | None, valid_after: datetime | None) -> bool:
    """True when a token or page session issued at ``issued_at`` was revoked at ``valid_after``.

    ``valid_after`` is ``users.sessions_valid_after``: signing out or a new password sets it, and
    every credential issued up to that moment is refused, on every worker, since each request
    reads it from the store.
    """
    if valid_after is None:
        return False
    return issued_at is None or issued_at <= valid_after.timestamp()
