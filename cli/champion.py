"""The registered champion for a command, or a clear exit saying what to run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from models.scorer import Scorer
    from triage.settings import Settings

console = Console(stderr=True)


def champion_or_exit(purpose: str, settings: Settings | None = None) -> Scorer:
    """The registered champion's scorer; exit 2 saying what to run when there is none."""
    from models.tracking import load_champion_scorer
    from triage.settings import get_settings

    settings = settings or get_settings()
    try:
        return load_champion_scorer(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
        )
    except Exception as exc:  # the registry says why; the user needs to know what to run
        console.print(f"[red]No champion model to {purpose}[/] ({exc}); run: triage train")
        raise typer.Exit(code=2) from exc
