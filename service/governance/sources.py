"""What the governance documents are generated from: the champion's documents and the catalogue.

The records are published, so the fairness audit they quote is the published one: small
counts withheld as the researchers' API withholds them (``models.fairness``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explain.unknowns import what_the_model_does_not_know
from features.catalogue import catalogue_rows
from features.policy import POLICY_VERSION, policy_rows
from service.champion import champion_documents, no_store_yet
from triage.retention import retention_schedule
from triage.settings import Settings


@dataclass(frozen=True)
class Sources:
    """The champion's model card, gates and fairness audit, with the catalogue and policy."""

    card: dict[str, Any]
    gates: list[dict[str, Any]]
    fairness: dict[str, Any] | None = None
    signals: list[dict[str, str]] = field(default_factory=catalogue_rows)
    policy: list[dict[str, str]] = field(default_factory=policy_rows)
    policy_version: str = POLICY_VERSION
    unknowns: dict[str, Any] = field(default_factory=lambda: dict(what_the_model_does_not_know()))
    retention: list[dict[str, str]] = field(default_factory=list)
    """The configured retention schedule (``triage.retention.retention_schedule``); empty:
    unknown, and the DPIA asks for it."""


def published_audit(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """The audit as it may be published (disclosure control applied); None when there is none,
    or when it predates disclosure control (then it must be re-run, never published as is)."""
    from models.fairness import pseudonymise_document

    if document is None:
        return None
    if "structure" not in document:
        return document if "disclosure" in document else None
    return pseudonymise_document(document)


class NoChampion(LookupError):
    """The registry names no champion with a model card (train one first)."""


def champion_sources(settings: Settings) -> Sources:
    """The sources for the registry's champion; ``NoChampion`` when it has none with a card."""
    card = gates = fairness = None
    if not no_store_yet(settings):  # never create an empty tracking store by asking
        from models.tracking import configure_mlflow

        configure_mlflow(settings.mlflow_tracking_uri)
        card, gates, fairness = champion_documents(settings)
    if card is None:
        raise NoChampion(
            f"no champion model card in {settings.mlflow_tracking_uri} "
            f"({settings.model_name}@{settings.model_alias}): run `triage train` first"
        )
    gate_rows = gates.get("gates", []) if isinstance(gates, dict) else list(gates or [])
    return Sources(
        card=card,
        gates=gate_rows,
        fairness=published_audit(fairness),
        retention=retention_schedule(settings.retention_periods()),
    )
