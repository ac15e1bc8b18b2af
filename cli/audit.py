"""``triage audit``: the champion's fairness audit of an extract, on numpy, DuckDB or Spark.

Every engine feeds the same statistics (``models.fairness.audit``) and writes the same
document: numpy and DuckDB compute the features, the referral-level tables give the rest
(``models.dataset.load_audit_data``, no events read); Spark computes features, scores and
the joins, and hands the driver counted cells (``explain.spark_audit``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer
from rich.console import Console
from rich.markup import escape

from cli.champion import champion_or_exit
from cli.features_build import (
    MASTER_HELP,
    Engine,
    engine_features,
    read_feature_table,
    spark_or_exit,
)

if TYPE_CHECKING:
    import pandas as pd

    from models.fairness import AuditConfig, FairnessAudit
    from models.scorer import Scorer

console = Console(stderr=True)

MASTER = re.compile(r"local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?|yarn|(spark|k8s|mesos)://\S+")
"""Spark's master URL forms (its "Master URLs" table)."""


def audit_in_memory(
    features: pd.DataFrame, extract: Path, scorer: Scorer, *, period: str, config: AuditConfig
) -> tuple[FairnessAudit, list[dict[str, Any]], bool]:
    """The audit from an engine's features and the referral-level tables: result, gaps, truth."""
    from explain.fairness_gaps import gap_explanations
    from models.dataset import load_audit_data
    from models.fairness import audit_attributes, audit_scored
    from models.splits import TEST

    table = load_audit_data(extract, features, outcome=scorer.outcome)
    ids = table.part(TEST) if period == "test" else table.label.index
    X = scorer.matrix(table.features.loc[ids])
    probability = scorer.score_matrix(X, with_range=False).probability
    result = audit_scored(table, ids, probability, scorer=scorer, directory=extract, config=config)
    gaps = gap_explanations(scorer, X, audit_attributes(table.protected.loc[ids]), result)
    return result, gaps, table.truth is not None


def _refuse(message: str) -> typer.Exit:
    """Say what is wrong (as typed: ``local[4]`` is not markup) and exit 2."""
    console.print(escape(message), style="red")
    return typer.Exit(code=2)


def audit(
    out: Annotated[Path, typer.Option(help="Directory for fairness_audit.json and .html.")],
    # A string, not a Path: a Path would fold s3a://bucket into s3a:/bucket for Spark.
    data: Annotated[
        str, typer.Option(help="Extract directory to audit (a URI for --engine spark).")
    ] = "var/extract",
    period: Annotated[
        str, typer.Option(help="Referrals to audit: 'test' (the held-out latest period) or 'all'.")
    ] = "test",
    bootstraps: Annotated[int, typer.Option(min=1, help="Bootstrap replicates per group.")] = 1000,
    min_size: Annotated[int, typer.Option(min=1, help="Suppress groups smaller than this.")] = 50,
    correction: Annotated[str, typer.Option(help="Multiple comparisons: holm or bh.")] = "holm",
    bootstrap: Annotated[
        str,
        typer.Option(
            help="household (cluster-aware: whole families resampled) or stratified "
            "(referrals treated as independent, within each group)."
        ),
    ] = "household",
    seed: Annotated[int, typer.Option(help="Bootstrap seed (recorded in the audit).")] = 0,
    publish: Annotated[
        bool,
        typer.Option(
            help="Write the published version: identifiers dropped, disclosure control applied."
        ),
    ] = False,
    min_count: Annotated[
        int, typer.Option(min=10, help="With --publish: withhold counts below this.")
    ] = 10,
    intersection: Annotated[
        list[str] | None,
        typer.Option(
            help="Also audit this intersection, e.g. ethnicity,sex,age_band (two or three "
            "attributes; repeat the option for more). Small cells are suppressed as elsewhere."
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="Where the features (and, on Spark, the scores and the audit's cell counts) "
            "are computed: numpy in memory; duckdb, the compiled catalogue out of core; spark, "
            "on a Spark session (--master). The statistics and the document are the same.",
        ),
    ] = Engine.numpy,
    master: Annotated[str | None, typer.Option("--master", help=MASTER_HELP)] = None,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB's memory limit, e.g. 4GB.")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="DuckDB's threads.")] = 2,
    features: Annotated[
        Path | None,
        typer.Option(
            "--features",
            help="Audit with this feature table (from triage features build, any engine) "
            "instead of building the signals; not with --engine spark.",
        ),
    ] = None,
) -> None:
    """Fairness audit of the champion on an extract: JSON and a self-contained HTML report."""
    from features.policy import DEFAULT_MODEL_INPUTS
    from features.sql.spark import is_uri
    from models.fairness import (
        INTERSECTIONS,
        AuditConfig,
        parse_intersection,
        to_document,
        write_report,
    )

    spark = engine is Engine.spark
    if master is not None and not spark:
        raise _refuse(f"--master {master} applies to --engine spark only, not {engine.value}")
    if master is not None and not MASTER.fullmatch(master):
        raise _refuse(
            f"--master {master!r} is not a Spark master: local[2], local[*], "
            "spark://host:7077, yarn, k8s://..."
        )
    if not (spark and is_uri(data)) and not (Path(data) / "referrals.parquet").exists():
        raise _refuse(f"No extract at {data} (run: triage synth --out {data})")
    if features is not None and (spark or not features.exists()):
        raise _refuse(
            "--features is not for --engine spark (Spark builds its own)"
            if spark
            else f"No feature table at {features} (run: triage features build)"
        )
    if (
        period not in ("test", "all")
        or correction not in ("holm", "bh")
        or bootstrap not in ("stratified", "household")
    ):
        raise _refuse(
            "--period must be test or all, --correction holm or bh, "
            "--bootstrap stratified or household"
        )
    try:
        extra = tuple(parse_intersection(text) for text in intersection or ())
    except ValueError as error:
        raise _refuse(f"--intersection: {error}") from None
    scorer = champion_or_exit("audit")
    config = AuditConfig(
        intersections=(*INTERSECTIONS, *(t for t in extra if t not in INTERSECTIONS)),
        n_boot=bootstraps,
        min_size=min_size,
        # Both were checked against these values above; typer options cannot be Literal types.
        correction=cast(Literal["holm", "bh"], correction),
        bootstrap=cast(Literal["stratified", "household"], bootstrap),
        seed=seed,
    )
    cells = None
    with console.status(f"auditing ({engine.value})"):
        if spark:
            from explain.spark_audit import audit_on_spark

            with spark_or_exit(master, "triage-audit") as session:
                try:
                    done = audit_on_spark(session, data, scorer, period=period, config=config)
                except Exception as exc:  # Spark's AnalysisException: a missing table or column
                    raise _refuse(f"Extract refused: {exc}") from exc
            result, gaps, synthetic, cells = done.result, done.gaps, done.synthetic, done.cells
        else:
            table = (
                engine_features(engine, Path(data), threads, memory_limit)
                if features is None
                else read_feature_table(
                    features, (*DEFAULT_MODEL_INPUTS, "child_age_months"), Path(data)
                )
            )
            result, gaps, synthetic = audit_in_memory(
                table, Path(data), scorer, period=period, config=config
            )
        meta = {
            "outcome": scorer.outcome,
            "outcome_words": scorer.outcome_words,
            "model_version": scorer.version,
            "period": period,
            "source": data if is_uri(data) else str(Path(data)),
            "synthetic": synthetic,
        }
        document = to_document(
            result, meta=meta, gaps=gaps, pseudonymise=publish, min_count=min_count
        )
        if publish:
            # Gap plots are drawn from row-level scores; the published HTML keeps only those
            # of groups that stay shown.
            kept = {(g["group_a"], g["group_b"], g["grouping"]) for g in document["why_gaps"]}
            gaps = [g for g in gaps if (g["group_a"], g["group_b"], g["grouping"]) in kept]
        json_path, html_path = write_report(document, out, gaps)
    counts = document["summary"]["verdicts"].get("observed", {})
    counted = "" if cells is None else f", from {cells:,} cells counted by Spark"
    console.print(
        f"Audited {result.n:,} referrals ({period}, {engine.value}{counted}) with "
        f"{scorer.version}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; {len(document['suppressed'])} groups withheld"
        + (" (published version)." if publish else ".")
    )
    console.print(f"Wrote {json_path} and {html_path}.")
