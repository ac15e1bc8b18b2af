"""The ``triage`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Risk-signal triage for child-protection front doors (synthetic data only).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Directory to write the extract into.")] = Path(
        "var/extract"
    ),
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same world.")
    ] = 2026,
    referrals: Annotated[
        int, typer.Option(min=100, help="Expected number of referrals over the whole window.")
    ] = 50_000,
    years: Annotated[int, typer.Option(min=2, max=30, help="Years of history.")] = 7,
    report: Annotated[
        bool,
        typer.Option("--report", help="Print the calibration report against published figures."),
    ] = False,
) -> None:
    """Write a synthetic extract (Parquet tables, truth kept apart) and optionally check it."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from triage.synth import WorldParams, generate_world
    from triage.synth.calibration import print_report
    from triage.synth.extract import write_extract

    params = WorldParams(seed=seed, n_referrals=referrals, years=years)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("synthesising", total=None)
        world = generate_world(
            params, progress=lambda step: progress.update(task, description=f"synthesising: {step}")
        )
        progress.update(task, description="writing Parquet")
        write_extract(world, out)
    rows = ", ".join(f"{n:,} {t}" for t, n in world.manifest["rows"].items())
    console.print(f"Wrote {out}: {rows}.")
    if report and not print_report(world, Console()):
        raise typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (the URL comes from TRIAGE_DATABASE_URL)."""
    from sqlalchemy.engine import make_url

    from triage.settings import get_settings
    from triage.store.migrate import upgrade

    url = get_settings().database_url
    upgrade(url, revision)
    shown = make_url(url).render_as_string(hide_password=True)
    console.print(f"Database {shown} is at revision {revision}.")


@app.command()
def load(
    directory: Annotated[Path, typer.Argument(help="Extract directory (Parquet or CSV tables).")],
) -> None:
    """Load an extract into the store (idempotent: rows already there are skipped)."""
    from triage.settings import get_settings
    from triage.store.errors import ExtractError
    from triage.store.loader import load_extract

    if not directory.is_dir():
        console.print(f"[red]No extract directory at {directory}[/]")
        raise typer.Exit(code=2)
    try:
        counts = load_extract(directory, url=get_settings().database_url)
    except ExtractError as exc:
        console.print(f"[red]Extract refused:[/] {exc}")
        raise typer.Exit(code=2) from exc
    console.print("Loaded: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()) + ".")


features_app = typer.Typer(help="The signal catalogue.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@features_app.command("list")
def features_list(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
) -> None:
    """Print the signal catalogue: entity, source, filter, window, aggregation, direction."""
    from rich.table import Table

    from features.catalogue import CATALOGUE_VERSION, catalogue_markdown, catalogue_rows

    if markdown:
        print(catalogue_markdown())
        return
    rows = catalogue_rows()
    table = Table(title=f"Signal catalogue (version {CATALOGUE_VERSION})")
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row.values())
    Console(width=200).print(table)


if __name__ == "__main__":
    app()
