"""``triage retention``: remove what is past its configured retention period (dry run first)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from triage.retention import RetentionRun, StartKind

retention_app = typer.Typer(
    help="Retention: remove records past their configured period (docs/operations/retention.md).",
    no_args_is_help=True,
)
console = Console(stderr=True)


@retention_app.command("apply")
def retention_apply(
    apply: Annotated[
        bool,
        typer.Option(
            "--apply/--dry-run",
            help="Remove the records (audited); the default is a dry run that changes nothing.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the run as JSON (for cron and monitoring)."),
    ] = False,
) -> None:
    """Show (or, with --apply, remove) per kind the records past their period and the cut-off."""
    from pydantic import ValidationError

    from triage.retention import AuditLogTarget, run_retention
    from triage.settings import get_settings
    from triage.store import make_engine

    try:
        settings = get_settings()
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            console.print(f"[red]{f'Setting {field}' if field else 'Settings'}: {message}[/red]")
        raise typer.Exit(code=2) from None
    key = settings.get_audit_key()
    assert key is not None  # created on first use
    engine = make_engine(settings.database_url)
    try:
        with _progress() as start_kind:
            run = run_retention(
                engine,
                settings.retention_periods(),
                datetime.now(UTC),
                apply=apply,
                actor=f"cli:{getpass.getuser()}",
                audit_log=AuditLogTarget(settings.audit_checkpoint_path(), key),
                start_kind=start_kind,
            )
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(run.document(), indent=1))
    else:
        _report(run)
    if run.refused:
        raise typer.Exit(code=1)


@contextmanager
def _progress() -> Iterator[StartKind]:
    """A progress bar per kind that removes anything (batches of keys)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:

        def start(kind: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(kind, total=total)
            return lambda done: progress.advance(task, done)

        yield start


def _report(run: RetentionRun) -> None:
    """Per kind: period, cut-off, records and rows (removed, or that a run would remove)."""
    from triage.store.retention import PEOPLE

    verb = "Removed" if run.applied else "Would remove"
    table = Table(
        title=f"Retention {'applied' if run.applied else 'dry run'} at {run.now:%Y-%m-%d %H:%M} UTC"
    )
    for column in ("kind", "period", "cut-off (before)", verb.lower()):
        table.add_column(column, no_wrap=True)
    for kind in run.kinds:
        period = "indefinitely" if not kind.period_days else f"{kind.period_days} days"
        if kind.kind == PEOPLE and kind.period_days:
            period = "while referred to"
        cutoff = f"{kind.cutoff:%Y-%m-%d %H:%M}" if kind.cutoff else "-"
        table.add_row(kind.kind, period, cutoff, str(kind.records))
    out = Console()
    out.print(table)
    for kind in run.kinds:
        rows = ", ".join(f"{name} {n}" for name, n in sorted(kind.rows.items()) if n)
        if rows:
            out.print(f"{kind.kind}: rows by table: {rows}")
        if kind.refused:
            console.print(f"[red]{kind.kind} refused, nothing of it removed: {kind.refused}[/red]")
    if not run.applied:
        console.print(
            "Dry run: nothing was changed. Remove them with `triage retention apply --apply`."
        )
    else:
        console.print(f"Recorded in the audit log as run {run.run_id}.")
