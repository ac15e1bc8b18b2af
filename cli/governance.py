"""``triage governance``: the transparency record and impact assessment drafts of the champion."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from service.governance import Sources

governance_app = typer.Typer(
    help="Documents a council signs off, generated from the champion (fields only a council can "
    "complete are marked, never invented).",
    no_args_is_help=True,
)
console = Console(stderr=True)

OutOption = Annotated[Path, typer.Option(help="Directory for the JSON and Markdown files.")]
AuditOption = Annotated[
    Path | None,
    typer.Option(
        help="A fairness audit JSON (from `triage audit`) to use instead of the one logged with "
        "the champion's training run."
    ),
]


def _sources(audit: Path | None) -> Sources:
    """The champion's documents (exit 2 saying what to run when there is none)."""
    from service.governance import champion_sources
    from service.governance.sources import NoChampion
    from triage.settings import get_settings

    try:
        sources = champion_sources(get_settings())
    except NoChampion as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(code=2) from exc
    if audit is None:
        return sources
    try:
        fairness = json.loads(audit.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(f"[red]Cannot read the audit {audit}[/] ({type(exc).__name__})")
        raise typer.Exit(code=2) from exc
    from service.governance.sources import published_audit

    published = published_audit(fairness)
    if published is None:
        console.print(f"[red]Not a publishable audit[/] (re-run: triage audit): {audit}")
        raise typer.Exit(code=2)
    return replace(sources, fairness=published)


def _write(
    out: Path,
    stem: str,
    title: str,
    build: Callable[[Sources], dict[str, Any]],
    required: tuple[str, ...],
    audit: Path | None,
) -> None:
    """Build one document, check its fields, write it as JSON and Markdown, say what is left."""
    from service.governance import document_markdown, missing_fields
    from service.governance.fields import TO_COMPLETE

    document = build(_sources(audit))
    missing = missing_fields(document, required)
    if missing:  # a generator defect, never the council's: refuse to write a partial record
        console.print(f"[red]Fields missing from the {title}:[/] {', '.join(missing)}")
        raise typer.Exit(code=1)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    md_path.write_text(document_markdown(title, document), encoding="utf-8")
    left = json.dumps(document).count(f'"{TO_COMPLETE}"')
    console.print(
        f"Wrote {json_path} and {md_path}: {len(required)} required fields, {left} for the "
        "council to complete."
    )


@governance_app.command()
def atrs(out: OutOption, audit: AuditOption = None) -> None:
    """The Algorithmic Transparency Recording Standard record (Tier 1 and Tier 2)."""
    from service.governance import ATRS_REQUIRED, atrs_record

    _write(
        out,
        "atrs",
        "Algorithmic transparency record",
        lambda s: atrs_record(s, today=date.today()),
        ATRS_REQUIRED,
        audit,
    )


@governance_app.command()
def dpia(out: OutOption, audit: AuditOption = None) -> None:
    """A pre-filled data protection impact assessment draft."""
    from service.governance.drafts import DPIA_REQUIRED, dpia_draft

    _write(
        out,
        "dpia",
        "Data protection impact assessment (draft)",
        lambda s: dpia_draft(s, today=date.today()),
        DPIA_REQUIRED,
        audit,
    )


@governance_app.command()
def eqia(out: OutOption, audit: AuditOption = None) -> None:
    """A pre-filled equality impact assessment draft."""
    from service.governance.drafts import EQIA_REQUIRED, eqia_draft

    _write(
        out,
        "eqia",
        "Equality impact assessment (draft)",
        lambda s: eqia_draft(s, today=date.today()),
        EQIA_REQUIRED,
        audit,
    )
