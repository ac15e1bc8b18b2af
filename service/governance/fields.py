"""The two kinds of field in a governance document: generated, or for the council to complete."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TO_COMPLETE = "to_complete"
"""The key of a field only the council can fill in; its value says what is needed."""


def to_complete(guidance: str) -> dict[str, str]:
    """A field the council completes, with what it should say (never an invented answer)."""
    return {TO_COMPLETE: guidance}


def generated(value: Any, source: str) -> dict[str, Any]:
    """A field generated from the project, naming where it came from."""
    return {"value": value, "source": source}


def missing_fields(document: Mapping[str, Any], required: Iterable[str]) -> list[str]:
    """The required dotted paths that are absent, empty, or neither generated nor marked."""
    missing = []
    for path in required:
        node: Any = document
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            missing.append(path)
        elif TO_COMPLETE in node:
            if not str(node[TO_COMPLETE]).strip():
                missing.append(path)
        elif node.get("value") in (None, "", [], {}) or not node.get("source"):
            missing.append(path)
    return missing
