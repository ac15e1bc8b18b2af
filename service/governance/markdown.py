"""Governance documents as Markdown: sections as headings, fields as text, gaps marked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from service.governance.fields import TO_COMPLETE

_COUNCIL = "**For the council to complete:**"


def document_markdown(title: str, document: Mapping[str, Any]) -> str:
    """The whole document as Markdown, fields in order, the council's gaps marked."""
    lines = [f"# {title}", ""]
    _section(lines, document, level=2)
    return "\n".join(lines).rstrip() + "\n"


def _heading(name: str) -> str:
    words = name.replace("_", " ")
    return words[:1].upper() + words[1:]


def _is_field(node: Any) -> bool:
    return isinstance(node, Mapping) and (TO_COMPLETE in node or "source" in node)


def _section(lines: list[str], node: Mapping[str, Any], *, level: int) -> None:
    for name, child in node.items():
        lines += [f"{'#' * min(level, 6)} {_heading(name)}", ""]
        if _is_field(child):
            _field(lines, child)
        elif isinstance(child, Mapping):
            _section(lines, child, level=level + 1)
        else:
            lines += [_text(child), ""]


def _field(lines: list[str], field: Mapping[str, Any]) -> None:
    if TO_COMPLETE in field:
        lines += [f"{_COUNCIL} {field[TO_COMPLETE]}", ""]
        return
    lines += [_text(field["value"]), "", f"*Source: {field['source']}.*", ""]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(f"- {v}" for v in value) if value else "None."
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value) and value:
        return _table(value)
    if isinstance(value, Mapping) and value:
        return "\n".join(_entry(str(k), v) for k, v in value.items())
    return _inline(value)


def _entry(name: str, value: Any) -> str:
    """One entry of a mapping: a list of sentences as nested bullets, else inline."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return f"- **{_heading(name)}**:\n" + "\n".join(f"    - {v}" for v in value)
    return f"- **{_heading(name)}**: {_inline(value)}"


def _inline(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "; ".join(value) if value else "none"
    return json.dumps(value, ensure_ascii=False, default=str)


def _table(rows: list[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = [
        "| " + " | ".join(_heading(c) for c in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [_inline(row.get(c, "")).replace("|", "\\|") for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
