"""``triage monitor``: the monitoring report (drift, scores, calibration, selection, agreement)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from models.scorer import Scorer
    from triage.settings import Settings

console = Console(stderr=True)


def monitor(
    out: Annotated[Path, typer.Option(help="Directory for report.json and report.html.")],
    data: Annotated[
        Path | None,
        typer.Option(
            help="Back-test an extract with the champion instead of reading the service's "
            "store (the extract's decisions carry no agreement with a band)."
        ),
    ] = None,
    months: Annotated[
        int | None, typer.Option(min=1, max=36, help="Months monitored (default: settings).")
    ] = None,
    reference_months: Annotated[
        int | None,
        typer.Option(min=1, max=60, help="Reference months before them (default: settings)."),
    ] = None,
    fail_on_alert: Annotated[
        bool, typer.Option(help="Exit 1 when any alert is raised (for schedulers).")
    ] = True,
) -> None:
    """Monitor the model's inputs and outputs by month against a reference period; alerts."""
    from models.monitoring import write_report
    from service.monitoring import STORE, record_run
    from triage.settings import get_settings
    from triage.store import make_engine, session_factory

    settings = get_settings()
    changes: dict[str, Any] = {}
    if months is not None:
        changes["monitor_months"] = months
    if reference_months is not None:
        changes["monitor_reference_months"] = reference_months
    settings = settings.model_copy(update=changes)
    engine = make_engine(settings.database_url)
    try:
        with console.status("monitoring"):
            if data is None:
                document = _store_document(settings, engine)
                source = STORE
            else:
                document = _extract_document(settings, data)
                source = "extract"
            json_path, html_path = write_report(document, out)
        # A report is only done once it is in the audit log; without the log, no file is left.
        try:
            record_run(
                session_factory(engine), document, actor="cli", source=source,
                action="monitoring.exported",
                payload={"files": [json_path.name, html_path.name]},
            )  # fmt: skip
        except Exception as exc:
            json_path.unlink(missing_ok=True)
            html_path.unlink(missing_ok=True)
            console.print(f"[red]Could not write the audit event; report removed[/] ({exc})")
            raise typer.Exit(code=1) from exc
    finally:
        engine.dispose()
    _print(document, json_path, html_path)
    if document["alerts"] and fail_on_alert:
        raise typer.Exit(code=1)


def _champion(settings: Settings, *, required: bool) -> Scorer | None:
    """The champion's scorer; without one, exit 2 if ``required``, else None."""
    from models.tracking import load_champion_scorer

    try:
        return load_champion_scorer(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
        )
    except Exception as exc:
        if not required:
            return None
        console.print(f"[red]No champion model to back-test with[/] ({exc}); run: triage train")
        raise typer.Exit(code=2) from exc


def _store_document(settings: Settings, engine: Any) -> dict[str, Any]:
    """The store's document; exit 2 when the store holds no referral in the window."""
    from service.monitoring import store_document
    from triage.store import session_factory

    document = store_document(
        settings=settings,
        read_sessions=session_factory(engine),
        scorer=_champion(settings, required=False),
    )
    if document is None:
        console.print("[red]No referrals in the store to monitor[/] (run: triage load DIR)")
        raise typer.Exit(code=2)
    return document


def _extract_document(settings: Settings, data: Path) -> dict[str, Any]:
    """A back-test of an extract with the champion."""
    from models.monitoring import default_windows, extract_data
    from models.monitoring import monitor as run_monitor
    from service.monitoring import thresholds_from
    from triage.store.tables import utcnow

    if not (data / "referrals.parquet").exists():
        console.print(f"[red]No extract at {data}[/] (run: triage synth --out {data})")
        raise typer.Exit(code=2)
    scorer = _champion(settings, required=True)
    assert scorer is not None
    rows = extract_data(data, scorer)
    windows = default_windows(
        rows.received_at,
        monitor_months=settings.monitor_months,
        reference_months=settings.monitor_reference_months,
    )
    meta = {
        "source": f"extract {data.name}",
        "generated_at": utcnow().isoformat(timespec="seconds"),
        "model_version": scorer.version,
        "outcome_words": scorer.outcome_words,
    }
    return run_monitor(rows, windows, thresholds=thresholds_from(settings), meta=meta)


def _print(document: dict[str, Any], json_path: Path, html_path: Path) -> None:
    """Say what was monitored, list the alerts, name the files."""
    months = document["months"]
    console.print(
        f"Monitored {months[0]} to {months[-1]} against {document['reference']['from'][:10]} to "
        f"{document['reference']['until'][:10]} ({len(document['signals'])} signals)."
    )
    if not document["reference"]["scored"]:
        console.print(
            "[yellow]No scored referrals in the reference period[/]: the service has not scored "
            "these months (loaded history is not scored). Back-test an extract with --data DIR."
        )
    alerts = document["alerts"]
    if alerts:
        table = Table(title=f"{len(alerts)} alerts", title_style="bold red")
        for column in ("kind", "subject", "month", "value", "rule"):
            table.add_column(column, overflow="fold")
        for a in alerts:
            table.add_row(a["kind"], a["subject"], a["month"], f"{a['value']:.3f}", a["threshold"])
        Console(stderr=True, width=160).print(table)
    else:
        console.print("[green]No alerts.[/]")
    console.print(f"Wrote {json_path} and {html_path}.")
