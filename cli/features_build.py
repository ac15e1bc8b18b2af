"""``triage features build``: every signal for every referral of an extract, on an engine."""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

console = Console(stderr=True)


class Engine(StrEnum):
    """Which engine computes the catalogue (the same declarations, the same values)."""

    numpy = "numpy"
    duckdb = "duckdb"


def _numpy(extract: Path) -> pd.DataFrame:
    """The numpy batch builder on the validated extract, read into memory."""
    from features.batch import build_features
    from triage.store.extract import read_extract

    world = read_extract(extract)
    return build_features(
        world.children,
        world.referrals,
        world.events,
        world.decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )


def features_build(
    extract: Annotated[Path, typer.Argument(help="The extract directory (Parquet tables).")],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the features (Parquet).")
    ] = Path("var/features.parquet"),
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="numpy: in memory; duckdb: the catalogue compiled to SQL, reading the Parquet "
            "files where they lie and spilling to disk past --memory-limit.",
        ),
    ] = Engine.numpy,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB's memory limit, e.g. 4GB.")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="DuckDB's threads.")] = 2,
) -> None:
    """Build the signal catalogue for every referral, as of each one's own time."""
    import duckdb
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from features.sql import build_features
    from triage.store.errors import ExtractError

    if not extract.is_dir():
        console.print(f"[red]No extract directory at {extract}[/]")
        raise typer.Exit(code=2)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(f"building features ({engine.value})", total=None)
        try:
            if engine is Engine.numpy:
                features = _numpy(extract)
            else:
                with tempfile.TemporaryDirectory(prefix="triage-spill-") as spill:
                    features = build_features(
                        extract,
                        threads=threads,
                        memory_limit=memory_limit,
                        temp_directory=Path(spill),
                    )
        except (ExtractError, FileNotFoundError, duckdb.Error) as exc:
            console.print(f"[red]Extract refused:[/] {exc}")
            raise typer.Exit(code=2) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    features.to_parquet(out)
    shape = f"{features.shape[1]} signals for {len(features):,} referrals"
    console.print(f"Wrote {out}: {shape} ({engine.value}).")
