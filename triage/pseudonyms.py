"""Keyed pseudonyms: the same id always maps to the same token, which cannot be reversed."""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_CONTEXT = b"triage.pseudonym.v1"


def pseudonym_key(secret: str) -> bytes:
    """A key for pseudonyms only, derived from the service's secret (never the secret itself)."""
    return hmac.new(secret.encode("utf-8"), PSEUDONYM_CONTEXT, hashlib.sha256).digest()


def pseudonym(key: bytes, kind: str, identifier: str) -> str:
    """``kind`` prefix and 64 bits of HMAC-SHA256: ``child-3fa9c1d2e4b5a6f7``."""
    digest = hmac.new(key, f"{kind}:{identifier}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:16]}"
