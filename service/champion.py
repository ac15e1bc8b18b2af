"""The champion model the service scores with: loading, reloading, and what is known about it."""

from __future__ import annotations

import contextlib
import gc
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from models.scorer import Scorer
from triage.settings import Settings
from triage.store.tables import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A scorer with its model card and gate results (when the registry had them)."""

    scorer: Scorer
    card: dict[str, Any] | None = None
    gates: dict[str, Any] | None = None
    fairness: dict[str, Any] | None = None
    """The fairness audit logged with the champion's training run (unpseudonymised)."""
    loaded_at: datetime = field(default_factory=utcnow)


ScorerLoader = Callable[[], "Scorer | LoadedModel | None"]
"""Returns the model to score with, or None when there is none; may raise."""

ChampionProbe = Callable[[], "str | None"]
"""Returns the scorer version the registry names champion now, None if none; may raise."""


def _sqlite_store(settings: Settings) -> Path | None:
    """The SQLite tracking store's file, None for another kind of store."""
    uri = settings.mlflow_tracking_uri
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def no_store_yet(settings: Settings) -> bool:
    """True when the SQLite tracking store does not exist (so MLflow must not create it)."""
    path = _sqlite_store(settings)
    return path is not None and not path.exists()


def _registry_not_ready(settings: Settings) -> bool:
    """True while a SQLite tracking store has no model registry (yet) to ask."""
    # ``triage train`` may be creating it: MLflow must not create its tables at the same time.
    if no_store_yet(settings):
        return True
    path = _sqlite_store(settings)
    if path is None:
        return False
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                ("registered_model_aliases",),
            ).fetchone()
    except sqlite3.Error:
        return True
    return found is None


def champion_loader(settings: Settings) -> ScorerLoader:
    """A loader for ``models:/<name>@<alias>`` from the settings' MLflow tracking store."""

    def load() -> LoadedModel | None:
        if no_store_yet(settings):
            return None
        from models.tracking import load_champion_scorer

        scorer = load_champion_scorer(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
        )
        card, gates, fairness = champion_documents(settings)
        return LoadedModel(scorer=scorer, card=card, gates=gates, fairness=fairness)

    return load


def champion_probe(settings: Settings) -> ChampionProbe:
    """A probe of the version ``models:/<name>@<alias>`` names now (a registry query, ~2 ms)."""

    def probe() -> str | None:
        if _registry_not_ready(settings):
            return None
        from models.tracking import champion_version

        return champion_version(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
        )

    return probe


def champion_documents(
    settings: Settings,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The champion run's model card, gates and fairness audit, best effort (None if absent)."""
    try:
        import mlflow
        from mlflow import MlflowClient

        version = MlflowClient().get_model_version_by_alias(
            settings.model_name, settings.model_alias
        )
        run = f"runs:/{version.run_id}"
        card = mlflow.artifacts.load_dict(f"{run}/model_card.json")
        gates = mlflow.artifacts.load_dict(f"{run}/gates.json")
    except Exception as exc:  # the card is documentation: its absence must not stop scoring
        log.warning("model card unavailable: %s", type(exc).__name__)
        return None, None, None
    try:
        fairness = mlflow.artifacts.load_dict(f"{run}/fairness/fairness_audit.json")
    except Exception as exc:  # runs trained before the audit existed have none
        log.warning("fairness audit unavailable: %s", type(exc).__name__)
        fairness = None
    return card, gates, fairness


class ModelHolder:
    """The current model, swapped atomically on reload; readers never see a half-loaded one."""

    def __init__(self, loader: ScorerLoader | None) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.last_attempt: datetime | None = None
        self._refused: str | None = None
        """The last promoted version that failed to load: not retried until another is."""

    @property
    def scorer(self) -> Scorer | None:
        """The scorer to use now, or None."""
        current = self.current
        return current.scorer if current is not None else None

    def load(self, *, unless: str | None = None) -> bool:
        """(Re)load the model, unless version ``unless`` is loaded; on failure keep the last."""
        with self._lock:
            current = self.current
            if unless is not None and current is not None and current.scorer.version == unless:
                return False  # loaded already, perhaps by another thread meanwhile
            self.last_attempt = utcnow()
            if self._loader is None:
                self.last_error = "no model loader is configured"
                return False
            try:
                loaded = self._loader()
            except Exception as exc:  # a missing registry or alias must not stop the service
                self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning("model load failed: %s", self.last_error)
                return False
            if loaded is None:
                self.last_error = "no champion model is registered"
                return False
            if isinstance(loaded, Scorer):
                loaded = LoadedModel(scorer=loaded)
            self.current = loaded
            self.last_error = None
            log.info("model loaded: %s", loaded.scorer.version)
            return True

    def load_if_promoted(self, probe: ChampionProbe) -> bool:
        """Load the champion if the registry names a version other than the one loaded.

        An alias that names nothing (removed, or no registry) keeps the current model; a
        version that failed to load is not tried again until the registry names another.
        """
        wanted = probe()
        if wanted is None or wanted == self._refused:
            return False
        loaded = self.load(unless=wanted)
        current = self.current
        self._refused = None if current is not None and current.scorer.version == wanted else wanted
        return loaded


def freeze_garbage_collector(settings: Settings, *, again: bool = False) -> None:
    """``gc.freeze`` what is alive now (the model, the app), if ``settings.gc_freeze``.

    ``again`` (after a model reload) unfreezes first, so that the old model's cycles can be
    collected rather than kept for ever.
    """
    if settings.gc_freeze:
        if again:
            gc.unfreeze()
        gc.collect()  # start-up's own garbage is freed, not frozen
        gc.freeze()
