"""``triage review-export``: a child's or household's practice-review chronology (JSON, HTML)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

console = Console(stderr=True)


@contextmanager
def store_transaction(*, read_only: bool = False) -> Iterator[Session]:
    """One transaction on the configured store (as ``cli.app``'s, which this module cannot
    import: the app imports this module to register the command)."""
    from triage.settings import get_settings
    from triage.store import make_engine, make_read_engine, session_factory

    engine = (make_read_engine if read_only else make_engine)(get_settings().database_url)
    try:
        with session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


def review_export(
    out: Annotated[Path, typer.Option(help="Directory for review-<id>.json and review-<id>.html.")],
    reason: Annotated[
        str,
        typer.Option(help="The review's name or reference (required), recorded in the audit log."),
    ],
    child: Annotated[
        str | None, typer.Option(help="The child the review is about (give this or --household).")
    ] = None,
    household: Annotated[
        str | None,
        typer.Option(help="The household the review is about: every child ever in it."),
    ] = None,
) -> None:
    """Write every referral, score, decision, check and reply about a child or household over
    time, with the audit-log entries behind each (the export itself is audited)."""
    from service import review_export as review
    from service.errors import Refusal
    from service.review_html import review_file_html

    actor = f"cli:{getpass.getuser()}"  # the person who ran it, as `triage retention apply`
    try:
        subject = review.subject_of(child=child, household=household)
        why = review.check_reason(reason)
    except Refusal as exc:
        _refuse(exc)
    with console.status(f"building the chronology of {subject.kind} {subject.id}"):
        try:
            with store_transaction(read_only=True) as session:
                document = review.build(session, subject=subject, reason=why, generated_by=actor)
        except Refusal as exc:
            _refuse(exc)
        out.mkdir(parents=True, exist_ok=True)
        json_path = out / review.file_name(document, "json")
        html_path = out / review.file_name(document, "html")
        json_path.write_text(review.to_json(document), encoding="utf-8")
        html_path.write_text(review_file_html(document), encoding="utf-8")
    # An export is only done once it is in the audit log; without the log, no file is left.
    try:
        with store_transaction() as session:
            review.record_export(
                session,
                document=document,
                actor=actor,
                channel="cli",
                files=[json_path.name, html_path.name],
            )
    except Exception as exc:
        json_path.unlink(missing_ok=True)
        html_path.unlink(missing_ok=True)
        console.print(f"[red]Could not write the audit event; export removed[/] ({exc})")
        raise typer.Exit(code=1) from exc
    counts = document["counts"]
    kinds = [("children", "child", "children"), ("referrals", "referral", "referrals"),
             ("scores", "score", "scores"), ("decisions", "decision", "decisions"),
             ("audit_entries", "audit entry", "audit entries")]  # fmt: skip
    listed = ", ".join(f"{counts[k]} {one if counts[k] == 1 else many}" for k, one, many in kinds)
    console.print(
        f"Wrote {json_path} and {html_path}: {listed} (check them with: triage auditlog verify)."
    )


def _refuse(exc: Exception) -> NoReturn:
    """Print the field at fault and why; exit 2."""
    errors = getattr(exc, "errors", None) or []
    for error in errors:
        console.print(f"[red]--{error['field']}[/]: {error['reason']}")
    if not errors:
        console.print(f"[red]{exc}[/]")
    raise typer.Exit(code=2)
