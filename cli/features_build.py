"""``triage features build``: every signal for every referral of an extract, on an engine."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

console = Console(stderr=True)


class Engine(StrEnum):
    """Which engine computes the catalogue (the same declarations, the same values)."""

    numpy = "numpy"
    duckdb = "duckdb"
    spark = "spark"


MASTER_HELP = (
    "Spark's master for --engine spark: local[2], local[*], spark://host:7077, yarn "
    "(default: spark-submit's --master, else the spark_master setting, TRIAGE_SPARK_MASTER)."
)


@contextmanager
def spark_or_exit(master: str | None, app_name: str) -> Iterator[Any]:
    """A Spark session on ``master`` (default: the setting); exit 2 naming what is missing."""
    from features.sql.spark import SparkUnavailable, spark_running, submitted
    from triage.settings import get_settings

    if master is None and not submitted():  # under spark-submit, its --master stands
        master = get_settings().spark_master
    with ExitStack() as stack:
        try:
            spark = stack.enter_context(spark_running(master, app_name))
        except SparkUnavailable as exc:
            console.print(f"[red]Spark unavailable:[/] {exc}")
            raise typer.Exit(code=2) from exc
        yield spark


def _spark(extract: str, out: str, master: str | None) -> int:
    """The compiled catalogue on Spark, written by Spark as Parquet (a directory of parts)."""
    from features.sql.spark import spark_features

    with spark_or_exit(master, "triage-features-build") as spark:
        spark_features(spark, extract).write.mode("overwrite").parquet(out)
        rows: int = spark.read.parquet(out).count()
    return rows


def numpy_features(extract: Path) -> pd.DataFrame:
    """The numpy batch builder on the validated extract, read into memory."""
    from features.batch import features_of
    from triage.store.extract import read_extract

    return features_of(read_extract(extract))


def engine_features(
    engine: Engine, extract: Path, threads: int, memory_limit: str | None
) -> pd.DataFrame:
    """Every signal for every referral, by numpy or DuckDB; exit 2 if the extract is unfit."""
    import duckdb

    from features.sql import build_features
    from triage.store.errors import ExtractError

    try:
        if engine is Engine.numpy:
            return numpy_features(extract)
        with tempfile.TemporaryDirectory(prefix="triage-spill-") as spill:
            return build_features(
                extract, threads=threads, memory_limit=memory_limit, temp_directory=Path(spill)
            )
    except (ExtractError, FileNotFoundError, duckdb.Error) as exc:
        console.print(f"[red]Extract refused:[/] {exc}")
        raise typer.Exit(code=2) from exc


def read_feature_table(
    path: Path, signals: Sequence[str], extract: Path | None = None
) -> pd.DataFrame:
    """A feature table from ``triage features build``, indexed by referral; exit 2 if unfit."""
    import pandas as pd

    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow's own words: not Parquet, truncated
        console.print(f"[red]--features {path} is not a Parquet table[/] ({exc})")
        raise typer.Exit(code=2) from exc
    if table.index.name != "referral_id" and "referral_id" in table.columns:
        table = table.set_index("referral_id")
    missing = [name for name in signals if name not in table.columns]
    if table.index.name != "referral_id" or missing:
        what = f"signals {', '.join(missing[:5])}" if missing else "a referral_id column"
        console.print(f"[red]--features {path} lacks {what}[/]")
        raise typer.Exit(code=2)
    if extract is not None and not _same_referrals(table.index, extract):
        console.print(
            f"[red]--features {path} is not built from {extract}[/]: its referrals differ "
            "(build it with triage features build on that extract)"
        )
        raise typer.Exit(code=2)
    return table


def _same_referrals(index: pd.Index, extract: Path) -> bool:
    """Whether a feature table has one row for each referral of the extract, and no other."""
    import pandas as pd

    referrals = pd.read_parquet(extract / "referrals.parquet", columns=["referral_id"])
    ids = referrals["referral_id"].astype(str)
    return bool(index.is_unique and len(index) == len(ids) and index.astype(str).isin(ids).all())


def features_build(
    # Strings, not Paths: a Path would fold s3a://bucket into s3a:/bucket for Spark.
    location: Annotated[
        str,
        typer.Argument(
            metavar="EXTRACT", help="The extract directory (Parquet tables); a URI for Spark."
        ),
    ],
    destination: Annotated[
        str, typer.Option("--out", help="Where to write the features (Parquet); a URI for Spark.")
    ] = "var/features.parquet",
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="numpy: in memory; duckdb: the catalogue compiled to SQL, reading the Parquet "
            "files where they lie and spilling to disk past --memory-limit; spark: the same "
            "SQL on a Spark session (--master), writing a directory of Parquet parts.",
        ),
    ] = Engine.numpy,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB's memory limit, e.g. 4GB.")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="DuckDB's threads.")] = 2,
    master: Annotated[str | None, typer.Option("--master", help=MASTER_HELP)] = None,
) -> None:
    """Build the signal catalogue for every referral, as of each one's own time."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from features.sql.spark import is_uri

    if engine is Engine.spark:
        if not is_uri(location) and not (Path(location) / "referrals.parquet").exists():
            console.print(f"[red]No extract at {location}[/] (no referrals.parquet)")
            raise typer.Exit(code=2)
        with console.status("building features (spark)"):
            try:
                rows = _spark(location, destination, master)
            except typer.Exit:
                raise
            except Exception as exc:  # Spark's AnalysisException: a missing table or column
                console.print(f"[red]Extract refused:[/] {exc}")
                raise typer.Exit(code=2) from exc
        console.print(f"Wrote {destination}: signals for {rows:,} referrals (spark).")
        return
    extract, out = Path(location), Path(destination)
    if not extract.is_dir():
        console.print(f"[red]No extract directory at {extract}[/]")
        raise typer.Exit(code=2)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(f"building features ({engine.value})", total=None)
        features = engine_features(engine, extract, threads, memory_limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    features.to_parquet(out)
    shape = f"{features.shape[1]} signals for {len(features):,} referrals"
    console.print(f"Wrote {out}: {shape} ({engine.value}).")
