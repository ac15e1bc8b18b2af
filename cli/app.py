"""The ``triage`` command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console

from cli.champion import champion_or_exit

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

    from triage.settings import Settings

app = typer.Typer(
    help="Risk-signal triage for child-protection front doors (synthetic data only).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


@contextmanager
def store_transaction(*, read_only: bool = False) -> Iterator[Session]:
    """One transaction on the configured store: committed if the block succeeds, then closed."""
    from triage.settings import get_settings
    from triage.store import make_engine, make_read_engine, session_factory

    engine = (make_read_engine if read_only else make_engine)(get_settings().database_url)
    try:
        with session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


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
    drift: Annotated[
        list[str] | None,
        typer.Option(
            "--drift",
            help="KNOB=VALUE: from --drift-from on, the world's knob takes this value "
            "(repeatable; to see monitoring catch it). Knobs: harm_detection_rate, "
            "family_notice_probability, family_repeat_mean, family_photograph_probability.",
        ),
    ] = None,
    drift_from: Annotated[
        str | None, typer.Option("--drift-from", help="ISO date the --drift values start.")
    ] = None,
    regions: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=10,
            help="Draw the world as this many regions, one at a time (peak memory is one "
            "region's). Default: one region per million referrals.",
        ),
    ] = None,
) -> None:
    """Write a synthetic extract (Parquet tables, truth kept apart) and optionally check it."""
    import resource

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from triage.synth import World, WorldParams, generate_world
    from triage.synth.calibration import print_report
    from triage.synth.extract import write_extract
    from triage.synth.national import region_count, region_params, write_national

    try:
        params = WorldParams(
            seed=seed, n_referrals=referrals, years=years, **_drift_options(drift, drift_from)
        )
        regions = regions or region_count(referrals)
        region_params(params, regions)  # refuses too few referrals for the regions asked
    except ValueError as exc:
        console.print(f"[red]World refused:[/] {exc}")
        raise typer.Exit(code=2) from exc
    calibrated = True

    def check(region: int, world: World) -> None:
        nonlocal calibrated
        Console().print(f"Region {region + 1} of {regions}:")
        calibrated = print_report(world, Console()) and calibrated

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("synthesising", total=None)

        def note(step: str) -> None:
            progress.update(task, description=f"synthesising: {step}")

        if regions == 1:
            world = generate_world(params, progress=note)
            progress.update(task, description="writing Parquet")
            write_extract(world, out)
            manifest = world.manifest
            if report:
                calibrated = print_report(world, Console())
        else:
            try:
                manifest = write_national(
                    params, regions, out, progress=note, check=check if report else None
                )
            except ValueError as exc:  # a region's columns or NHS numbers do not fit
                console.print(f"[red]World not written:[/] {exc}")
                raise typer.Exit(code=1) from exc
    rows = ", ".join(f"{n:,} {t}" for t, n in manifest["rows"].items())
    drawn = f" in {regions} regions" if regions > 1 else ""
    console.print(f"Wrote {out}{drawn}: {rows}.")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    console.print(f"Peak memory {peak:.2f} GB.")
    if not calibrated:
        raise typer.Exit(code=1)


def _drift_options(drift: list[str] | None, drift_from: str | None) -> dict[str, Any]:
    """``--drift KNOB=VALUE`` and ``--drift-from DATE`` as WorldParams fields (else ValueError)."""
    from datetime import date

    knobs: dict[str, float] = {}
    for item in drift or []:
        name, sep, value = item.partition("=")
        try:
            knobs[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--drift {item!r}: expected KNOB=NUMBER") from None
        if not sep:
            raise ValueError(f"--drift {item!r}: expected KNOB=NUMBER")
    start = None
    if drift_from is not None:
        try:
            start = date.fromisoformat(drift_from)
        except ValueError:
            raise ValueError(f"--drift-from {drift_from!r}: expected an ISO date") from None
    return {"drift": knobs, "drift_from": start}


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (the URL comes from TRIAGE_DATABASE_URL)."""
    from sqlalchemy.engine import make_url

    from triage.settings import get_settings
    from triage.store.migrate import upgrade

    settings = get_settings()
    url = settings.database_url
    upgrade(url, revision)
    shown = make_url(url).render_as_string(hide_password=True)
    console.print(f"Database {shown} is at revision {revision}.")
    if revision == "head":
        _anchor_new_chain(settings)


def _anchor_new_chain(settings: Settings) -> None:
    """Sign a new store's empty audit chain, so every event it ever holds is anchored."""
    from triage.store.auditlog import checkpoint_chain

    key = settings.get_audit_key()
    assert key is not None
    with store_transaction(read_only=True) as session:
        outcome = checkpoint_chain(session, settings.audit_checkpoint_path(), key)
    if outcome.written and outcome.checkpoint is not None and outcome.checkpoint.event_id == 0:
        console.print(f"Audit chain anchored from its start in {settings.audit_checkpoint_path()}.")


@app.command()
def load(
    directory: Annotated[Path, typer.Argument(help="Extract directory (Parquet or CSV tables).")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Move every date and time of the extract so that it ends at this moment: "
            "'now' (a demo as of today) or an ISO date or time in UTC. The files are not "
            "changed, and the gaps between records and every age stay as they were.",
        ),
    ] = None,
) -> None:
    """Load an extract into the store (idempotent: rows already there are skipped)."""
    from triage.settings import get_settings
    from triage.store.errors import ExtractError
    from triage.store.loader import load_extract

    if not directory.is_dir():
        console.print(f"[red]No extract directory at {directory}[/]")
        raise typer.Exit(code=2)
    moment = _moment(as_of) if as_of is not None else None
    try:
        counts = load_extract(directory, url=get_settings().database_url, as_of=moment)
    except ExtractError as exc:
        console.print(f"[red]Extract refused:[/] {exc}")
        raise typer.Exit(code=2) from exc
    console.print("Loaded: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()) + ".")
    if moment is not None:
        console.print(
            f"Every date and time moved so the extract ends at {moment:%Y-%m-%d %H:%M} UTC."
        )


def _moment(text: str) -> datetime:
    """``now`` or an ISO date or time (UTC unless it names its offset)."""
    if text.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        console.print(f"[red]--as-of {text!r} is not 'now' or an ISO date or time[/]")
        raise typer.Exit(code=2) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Extract directory to train on.")] = Path(
        "var/extract"
    ),
    outcome: Annotated[
        str,
        typer.Option(
            help="Observed outcome: plan_from_referral, significant_harm_12m or investigated_12m."
        ),
    ] = "plan_from_referral",
    seed: Annotated[int, typer.Option(help="Seed for bootstraps and the challenger.")] = 0,
    min_auc: Annotated[float, typer.Option(help="Promotion gate: minimum test AUC.")] = 0.65,
    max_group_gap: Annotated[
        float, typer.Option(help="Promotion gate: largest calibration gap between groups.")
    ] = 0.05,
    max_group_fnr_excess: Annotated[
        float,
        typer.Option(
            help="Promotion gate: how much more often a group's (or a referrer type's) children "
            "with the observed outcome may be missed in the first 10% than everyone's."
        ),
    ] = 0.15,
) -> None:
    """Fit both model families, evaluate, log to MLflow, register; promote if the gates pass."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from explain.fairness_gaps import log_fairness_audit
    from explain.report import log_global_views
    from models.gates import GateConfig
    from models.tracking import log_and_register
    from models.train import TrainConfig
    from models.train import train as run_training
    from triage.settings import get_settings

    if not (data / "referrals.parquet").exists():
        console.print(f"[red]No extract at {data}[/] (run: triage synth --out {data})")
        raise typer.Exit(code=2)
    config = TrainConfig(
        outcome=outcome,
        seed=seed,
        gates=GateConfig(
            min_auc=min_auc,
            max_group_calibration_gap=max_group_gap,
            max_group_fnr_excess=max_group_fnr_excess,
        ),
    )
    settings = get_settings()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("training", total=None)
        try:
            result = run_training(
                data, config, progress=lambda s: progress.update(task, description=f"training: {s}")
            )
        except ValueError as exc:
            console.print(f"[red]Training refused:[/] {exc}")
            raise typer.Exit(code=2) from exc
        progress.update(task, description="logging to MLflow")
        registration = log_and_register(
            result,
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
        )
        progress.update(task, description="logging global explanations")
        log_global_views(registration.run_id, result, tracking_uri=settings.mlflow_tracking_uri)
        progress.update(task, description="logging the fairness audit")
        log_fairness_audit(
            registration.run_id, result, tracking_uri=settings.mlflow_tracking_uri, directory=data
        )
    m = result.test_metrics
    console.print(f"Chose the {result.chosen}: {result.reason}.")
    console.print(
        f"Test period: AUC {m['auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, Brier {m['brier']:.3f}, "
        f"calibration slope {m['calibration_slope']:.2f}, "
        f"precision at top 10% {m['precision_at_10']:.2f}."
    )
    for gate in result.gates:
        mark = "[green]pass[/]" if gate.passed else f"[red]FAIL[/] (off by {gate.shortfall:.4f})"
        console.print(f"  gate {gate.gate}: {gate.value:.4f} {gate.limit} {mark}")
    where = f"{registration.model_name} version {registration.version} (run {registration.run_id})"
    if registration.promoted:
        console.print(f"Registered {where} and set alias @{registration.alias}.")
    else:
        console.print(f"Registered {where}; gates failed, @{registration.alias} unchanged.")


@app.command()
def score(
    # Strings, not Paths, so that a URI for --engine spark keeps its "//" (s3a://bucket/...).
    data: Annotated[
        str, typer.Option(help="Extract directory to score (a URI for --engine spark).")
    ] = "var/extract",
    out: Annotated[
        str,
        typer.Option(
            help="Output file: Parquet, or CSV if it ends in .csv (spark: a Parquet directory)."
        ),
    ] = "var/scores.parquet",
    top: Annotated[int, typer.Option(min=1, max=40, help="Reasons per referral.")] = 5,
    engine: Annotated[
        Literal["numpy", "spark"],
        typer.Option(help="numpy: in memory; spark: features and scores on a Spark session."),
    ] = "numpy",
    master: Annotated[str | None, typer.Option(help="Spark's master for --engine spark.")] = None,
    features: Annotated[
        Path | None,
        typer.Option(
            help="Score this feature table (from triage features build, any engine) instead "
            "of building the signals from --data (--engine numpy only).",
        ),
    ] = None,
) -> None:
    """Score every referral of an extract with the champion: band, range and top reasons."""
    from cli.features_build import read_feature_table
    from cli.spark_score import remove_output, score_extract_on_spark
    from explain.batch_scores import score_extract, score_features, write_scores
    from features.sql.spark import is_uri
    from triage.settings import get_settings
    from triage.store import add_audit_event

    spark = engine == "spark"
    if features is not None:
        if spark:
            console.print("[red]--features is for --engine numpy[/] (Spark builds its own)")
            raise typer.Exit(code=2)
        if not features.exists():
            console.print(f"[red]No feature table at {features}[/] (run: triage features build)")
            raise typer.Exit(code=2)
    elif not (spark and is_uri(data)) and not (Path(data) / "referrals.parquet").exists():
        console.print(f"[red]No extract at {data}[/] (run: triage synth --out {data})")
        raise typer.Exit(code=2)
    if spark and out.endswith(".csv"):
        console.print("[red]--engine spark writes Parquet[/]: give --out a name not ending .csv")
        raise typer.Exit(code=2)
    settings = get_settings()
    scorer = champion_or_exit("score with", settings)
    with console.status(f"scoring ({engine})"):
        if spark:
            try:
                rows, bands = score_extract_on_spark(data, out, scorer, top=top, master=master)
            except typer.Exit:
                raise
            except Exception as exc:  # Spark's AnalysisException: a missing table or column
                console.print(f"[red]Extract refused:[/] {exc}")
                raise typer.Exit(code=2) from exc
            name = out.rstrip("/").rsplit("/", 1)[-1]
        else:
            scores = (
                score_extract(Path(data), scorer, top=top)
                if features is None
                else score_features(read_feature_table(features, scorer.signals), scorer, top=top)
            )
            path = write_scores(scores, Path(out))
            counts = scores["band"].value_counts()
            rows, name = len(scores), path.name
            bands = {str(band): int(n) for band, n in counts.items()}
    # An export is only done once it is in the audit log; without the log, no file is left.
    try:
        with store_transaction() as session:
            add_audit_event(
                session, actor="cli", action="export", entity_type="scores",
                model_version=scorer.version,
                payload={"rows": rows, "file": name, "top_reasons": top, "engine": engine},
            )  # fmt: skip
    except Exception as exc:
        if spark:
            removed = remove_output(out)
        else:
            path.unlink(missing_ok=True)
            removed = True
        left = "export removed" if removed else f"remove {out} yourself"
        console.print(f"[red]Could not write the audit event; {left}[/] ({exc})")
        raise typer.Exit(code=1) from exc
    console.print(
        f"Scored {rows:,} referrals with {scorer.version} into {out}: "
        + ", ".join(f"{band} {count:,}" for band, count in bands.items())
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(min=1, max=32, help="Worker processes, handed connections in turn."),
    ] = 1,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations before serving.")] = True,
) -> None:
    """Run the service API (models:/<name>@champion is loaded if registered)."""
    from serving.supervisor import CannotListen, ServerOptions, check_free
    from serving.supervisor import serve as serve_app
    from triage.settings import get_settings
    from triage.store.migrate import upgrade

    settings = get_settings()
    try:
        check_free(host, port)
    except CannotListen as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if migrate:
        upgrade(settings.database_url)  # once, before any worker starts
    address = f"[{host}]" if ":" in host else host
    shown = "localhost" if host in ("127.0.0.1", "::1") else address
    console.print(
        f"Serving the triage API on http://{address}:{port} "
        f"(docs: http://{shown}:{port}/docs); Ctrl-C stops it."
    )
    options = ServerOptions(
        "api.app:create_app",
        host=host,
        port=port,
        uvicorn_config={
            "proxy_headers": True,
            "forwarded_allow_ips": settings.forwarded_allow_ips,
            "timeout_graceful_shutdown": settings.request_timeout_seconds,
        },
        followers_env={"TRIAGE_SCORE_BACKLOG": "false"},  # the first worker scores it once
        # requests, then the start-up backlog's current batch (api.app joins it for 30 s)
        stop_grace_seconds=settings.request_timeout_seconds + 40,
    )
    try:
        serve_app(options, workers=workers)
    except CannotListen as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


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


link_app = typer.Typer(
    help="Identity resolution: which records are the same person (Splink).", no_args_is_help=True
)
app.add_typer(link_app, name="link")
IDENTITY_RECORDS = "identity_records.parquet"
IDENTITY_TRUTH = "identity_truth.parquet"


def _identity_records_or_exit(extract: Path) -> pd.DataFrame:
    """The extract's identity records; exit 2 saying why when there are none."""
    import pandas as pd

    path = extract / IDENTITY_RECORDS
    if not path.exists():
        console.print(f"[red]No identity records at {path}[/] (an extract from: triage synth)")
        raise typer.Exit(code=2)
    return pd.read_parquet(path)


@link_app.command("train")
def link_train(
    extract: Annotated[Path, typer.Option(help="Extract directory with identity_records.")] = Path(
        "var/extract"
    ),
    seed: Annotated[int, typer.Option(help="Seed for the random sampling of u.")] = 1,
) -> None:
    """Estimate the linkage model's weights on an extract; write var_dir/identity/model.json."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from triage.identity import IdentityModel, model_path

    records = _identity_records_or_exit(extract)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("training", total=None)
        try:
            model = IdentityModel.train(
                records,
                seed=seed,
                progress=lambda s: progress.update(task, description=f"training: {s}"),
            )
        except ValueError as exc:
            console.print(f"[red]Training refused:[/] {exc}")
            raise typer.Exit(code=2) from exc
    path = model_path()
    model.save(path)
    console.print(f"Trained on {len(records):,} identity records; wrote {path}.")


@link_app.command("run")
def link_run(
    extract: Annotated[Path, typer.Option(help="Extract directory with identity_records.")] = Path(
        "var/extract"
    ),
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the clusters (default: EXTRACT/clusters.parquet)."),
    ] = None,
) -> None:
    """Cluster an extract's identity records into persons; score them when the truth is there."""
    import pandas as pd
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from triage.identity import LINK_AT, REVIEW_FROM, default_model
    from triage.identity.evaluate import pairwise_scores

    records = _identity_records_or_exit(extract)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("loading the model", total=None)
        model = default_model()
        linkage = model.link(
            records, progress=lambda s: progress.update(task, description=f"linking: {s}")
        )
    target = out or extract / "clusters.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    linkage.clusters.to_parquet(target, index=False)
    pairs_path = target.with_name("identity_pairs.parquet")
    linkage.pairs.to_parquet(pairs_path, index=False)
    sizes = linkage.clusters.groupby("cluster_id").size()
    review = int((~linkage.pairs["linked"]).sum())
    console.print(
        f"{len(records):,} identity records in {sizes.size:,} clusters "
        f"({int((sizes > 1).sum()):,} of more than one record, the largest {int(sizes.max())}); "
        f"{int(linkage.pairs['linked'].sum()):,} pairs linked at >= {LINK_AT}, {review:,} between "
        f"{REVIEW_FROM} and the link rule. Wrote {target} and {pairs_path}."
    )
    truth_path = extract / IDENTITY_TRUTH
    if truth_path.exists():
        scores = pairwise_scores(linkage.clusters, pd.read_parquet(truth_path))
        console.print(
            f"Against the truth: {scores.persons:,} persons; pairwise precision "
            f"{scores.precision:.4f}, recall {scores.recall:.4f}, F1 {scores.f1:.4f} "
            f"({scores.correct_pairs:,} of {scores.predicted_pairs:,} predicted pairs correct, "
            f"{scores.true_pairs:,} true pairs)."
        )


if __name__ == "__main__":
    app()


users_app = typer.Typer(help="People who sign in, with their roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")
keys_app = typer.Typer(help="API keys for referral systems.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
auditlog_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(auditlog_app, name="auditlog")


NewPassword = Annotated[
    str,
    typer.Option(
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="TRIAGE_NEW_USER_PASSWORD",
        help="At least 12 characters; prompted for when not given.",
    ),
]
"""A new password: prompted for twice, or read from TRIAGE_NEW_USER_PASSWORD."""


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="The name the user signs in with.")],
    role: Annotated[
        list[str],
        typer.Option("--role", help="practitioner, manager, researcher or admin (repeatable)."),
    ],
    password: NewPassword,
) -> None:
    """Add a user (argon2 password hash) with one or more roles."""
    from triage.accounts import AccountError, create_user

    try:
        with store_transaction() as session:
            user = create_user(session, username=username, password=password, roles=role)
    except AccountError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=1) from None
    console.print(f"Added user {username} ({user.user_id}) with roles {', '.join(user.roles)}.")


@users_app.command("set-password")
def users_set_password(
    username: Annotated[str, typer.Argument(help="The user whose password changes.")],
    password: NewPassword,
) -> None:
    """Set a user's password; every page session and token they hold stops working at once."""
    from triage.accounts import AccountError, set_password

    try:
        with store_transaction() as session:
            user = set_password(session, username=username, password=password)
    except AccountError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=1) from None
    console.print(f"New password set for {username} ({user.user_id}); earlier sign-ins revoked.")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'police MASH feed'.")],
    source_system: Annotated[
        str, typer.Option(help="The source_system the key may submit and read for.")
    ],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="referrals:write, events:write, referrals:read or checks:reply "
            "(repeatable; default all).",
        ),
    ] = None,
    agency: Annotated[
        list[str] | None,
        typer.Option(
            "--agency",
            help="An agency whose events the key may post: police, health, school, housing or "
            "social_care (repeatable; default none: the key's events are refused).",
        ),
    ] = None,
) -> None:
    """Create an API key; the key is printed once (only its SHA-256 is stored)."""
    from triage.accounts import AccountError, create_api_key
    from triage.security import SCOPES

    agencies = agency or []
    try:
        with store_transaction() as session:
            key = create_api_key(
                session,
                name=name,
                source_system=source_system,
                scopes=scope or SCOPES,
                agencies=agencies,
            )
    except AccountError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(code=1) from None
    reports = ", ".join(sorted(set(agencies))) or "no agency (referrals only)"
    console.print(
        f"Created key {key.key_id} for {source_system}, reporting for {reports}; "
        "it is shown only once:"
    )
    print(key.key)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (K-…).")]) -> None:
    """Revoke an API key."""
    from triage.accounts import revoke_key

    with store_transaction() as session:
        found = revoke_key(session, key_id=key_id)
    if not found:
        console.print(f"[red]No key {key_id}.[/red]")
        raise typer.Exit(code=1)
    console.print(f"Revoked {key_id}.")


@auditlog_app.command("verify")
def auditlog_verify() -> None:
    """Walk the audit chain against its signed checkpoint; exit 1 naming what failed."""
    from triage.settings import get_settings
    from triage.store.auditlog import CheckpointError, read_checkpoint, verify_chain

    settings = get_settings()
    path = settings.audit_checkpoint_path()
    try:
        checkpoint = read_checkpoint(path, settings.get_audit_key(create=False))
    except CheckpointError as error:
        console.print(f"[red]Audit checkpoint not trusted: {error}.[/red]")
        raise typer.Exit(code=1) from None
    with store_transaction(read_only=True) as session:
        report = verify_chain(session, checkpoint)
    if report.broken is not None:
        console.print(
            f"[red]Audit chain broken at event {report.broken.event_id}: "
            f"{report.broken.reason} ({max(report.events - 1, 0)} events before it verified)."
            "[/red]"
        )
        raise typer.Exit(code=1)
    if checkpoint is None and report.events:
        console.print(
            f"[red]Audit chain not anchored: no signed checkpoint at {path}, so removing the "
            f"newest events or rewriting the whole chain would go unnoticed. The links hold "
            f"({report.events} events, head {report.head}); if the chain is known to be "
            "good, sign it with `triage auditlog checkpoint --first`.[/red]"
        )
        raise typer.Exit(code=1)
    console.print(f"Audit chain intact: {report.events} events, head {report.head}.")
    if report.expired_through:
        console.print(
            f"It starts after event {report.expired_through}: older events were removed by "
            "retention, as the chain's `audit.expired` event records."
        )
    if checkpoint is not None:
        console.print(
            f"Anchored: event {checkpoint.event_id} ({checkpoint.events} events) matches the "
            f"checkpoint signed at {checkpoint.written_at} in {path}."
        )


@auditlog_app.command("checkpoint")
def auditlog_checkpoint(
    first: Annotated[
        bool,
        typer.Option(
            "--first",
            help="Anchor a chain that has events but no checkpoint file yet (after checking it).",
        ),
    ] = False,
) -> None:
    """Sign the chain's newest event into the checkpoint file, if it extends the last one."""
    from triage.settings import get_settings
    from triage.store.auditlog import checkpoint_chain

    settings = get_settings()
    path = settings.audit_checkpoint_path()
    key = settings.get_audit_key()
    assert key is not None
    with store_transaction(read_only=True) as session:
        outcome = checkpoint_chain(session, path, key, first=first)
    if outcome.refused is not None:
        console.print(f"[red]Checkpoint refused, {path} left as it was: {outcome.refused}.[/red]")
        raise typer.Exit(code=1)
    checkpoint = outcome.checkpoint
    if checkpoint is None:
        console.print("The audit chain is empty: nothing to sign.")
        return
    verb = "Signed" if outcome.written else "Already signed"
    console.print(
        f"{verb}: event {checkpoint.event_id} ({checkpoint.events} events), "
        f"head {checkpoint.hash}, in {path}."
    )


@users_app.command("demo")
def users_demo() -> None:
    """Create (or reset) demo-<role> users and a demo API key, and print them (demo only)."""
    from triage.accounts import DEMO_SOURCE_SYSTEM, demo_accounts

    with store_transaction() as session:
        passwords, key = demo_accounts(session)
    console.print("Demo accounts (sign in at /login, or POST /v1/auth/token; synthetic data only):")
    for username, password in passwords.items():
        console.print(f"  {username:<18} {password}")
    console.print(f"Demo API key {key.key_id} for source_system {DEMO_SOURCE_SYSTEM}:")
    console.print(f"  {key.key}")


from cli.governance import governance_app  # noqa: E402  (registered after the app exists)

app.add_typer(governance_app, name="governance")

from cli.monitor import monitor as monitor_command  # noqa: E402  (registered after the app exists)

app.command("monitor")(monitor_command)

from cli.review import review_export  # noqa: E402  (registered after the app exists)

app.command("review-export")(review_export)

from cli.retention import retention_app  # noqa: E402  (registered after the app exists)

app.add_typer(retention_app, name="retention")

from cli.features_build import features_build  # noqa: E402  (registered after the app exists)

features_app.command("build")(features_build)

from cli.audit import audit  # noqa: E402  (registered after the app exists)

app.command("audit")(audit)
