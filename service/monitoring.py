"""The monitoring check on the service's own store: run on a schedule and by ``triage monitor``.

Each run reads the referrals of the reference and monitored months (their latest score with
its input values, their latest agreement, their outcome), computes the monitoring document,
keeps its summary in the store (``/metrics`` and the manager page read the newest) and writes
an audit event. Nothing personal leaves the run: the document holds aggregates only.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from models.dataset import DEFAULT_OUTCOME, OUTCOMES, age_band, outcome_label
from models.fairness import deprivation_band
from models.monitoring import (
    MonitorData,
    Thresholds,
    alert_counts,
    default_windows,
    latest_signal_psi,
    monitor,
)
from models.scorer import Scorer
from service.context import ServiceContext
from triage.queue import age_in_months
from triage.settings import Settings
from triage.store import add_audit_event
from triage.store.monitoring import (
    MonitoredReferral,
    add_monitoring_report,
    latest_monitoring_report,
    monitored_referrals,
)
from triage.store.tables import utcnow
from triage.vocab import referrer_voice

log = logging.getLogger(__name__)

STORE = "store"
MAX_SUMMARY_ALERTS = 50
"""Alerts kept in the stored summary (the report file holds them all)."""


def thresholds_from(settings: Settings) -> Thresholds:
    """The alert thresholds set in the settings' monitoring block."""
    return Thresholds(
        psi_alert=settings.monitor_psi_alert,
        psi_warn=settings.monitor_psi_warn,
        calibration_ratio=settings.monitor_calibration_ratio,
        calibration_z=settings.monitor_calibration_z,
        selection_ratio=settings.monitor_selection_ratio,
        group_selection_change=settings.monitor_group_selection_change,
        override_change=settings.monitor_override_change,
        unscored_share=settings.monitor_unscored_share,
        min_count=settings.monitor_min_count,
        suppress_below=settings.monitor_suppress_below,
        capacity=settings.monitor_capacity,
    )


def store_data(records: Sequence[MonitoredReferral], *, outcome: str) -> MonitorData:
    """Monitoring rows from stored referrals: the latest score's inputs, agreement, outcome."""
    index = pd.Index([r.referral_id for r in records], name="referral_id")
    signals = pd.DataFrame.from_records(
        [
            {k: (np.nan if v is None else float(v)) for k, v in (r.values or {}).items()}
            for r in records
        ],
        index=index,
    ).astype(float)
    outcomes = pd.DataFrame.from_records(
        [dict(r.outcome) for r in records if r.outcome is not None],
        index=pd.Index([r.referral_id for r in records if r.outcome is not None]),
        columns=["highest_level", "investigated_12m", "significant_harm_12m"],
    )
    label = pd.Series(np.nan, index=index)
    if not outcomes.empty:
        label.loc[outcomes.index] = outcome_label(outcomes, outcome).astype(float)
    months = pd.Series(
        [age_in_months(r.date_of_birth, r.received_at.date()) for r in records],
        index=index,
        dtype="float64",
    )
    decile = pd.Series([r.deprivation_decile for r in records], index=index, dtype="float64")
    groups = pd.DataFrame(
        {
            "referrer_type": [r.referrer_type for r in records],
            "referrer_voice": [
                referrer_voice(r.referrer_type, r.referrer_relationship) for r in records
            ],
            "age_band": age_band(months).to_numpy(),
            "sex": [r.sex for r in records],
            "ethnicity": [r.ethnicity for r in records],
            "deprivation_band": deprivation_band(decile).to_numpy(),
        },
        index=index,
    )
    received = pd.Series([r.received_at for r in records], index=index)
    scored_at = [r.received_at for r in records if r.probability is not None]
    # Referrals from before the first one the service scored are loaded history, not failures.
    expected = received >= min(scored_at) if scored_at else pd.Series(False, index=index)
    return MonitorData(
        received_at=received,
        signals=signals,
        probability=pd.Series(
            [np.nan if r.probability is None else r.probability for r in records],
            index=index,
            dtype="float64",
        ),
        label=label,
        agreement=pd.Series([r.agreement for r in records], index=index, dtype=object),
        groups=groups,
        scoring_expected=expected,
    )


def summary_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the store keeps of a run: alert counts, the first alerts, each signal's latest PSI."""
    unscored = [r for r in document["unscored"] if r.get("share") is not None]
    return {
        "months": document["months"],
        "reference": document["reference"],
        "alert_counts": alert_counts(document),
        "alerts": document["alerts"][:MAX_SUMMARY_ALERTS],
        "signal_psi": latest_signal_psi(document),
        "unscored_share": unscored[-1]["share"] if unscored else None,
        "thresholds": document["thresholds"],
    }


def store_document(
    *,
    settings: Settings,
    read_sessions: sessionmaker[Session],
    scorer: Scorer | None,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """The monitoring document of the store's recent months (None: no referrals to monitor).

    ``scorer`` (the champion, if any) names the outcome whose calibration is checked.
    """
    now = now or utcnow()
    outcome = scorer.outcome if scorer is not None else DEFAULT_OUTCOME
    months = settings.monitor_months + settings.monitor_reference_months + 1
    since = now - timedelta(days=31 * months)
    with read_sessions() as session:
        records = monitored_referrals(session, since=since)
    if not records:
        return None
    data = store_data(records, outcome=outcome)
    windows = default_windows(
        data.received_at,
        monitor_months=settings.monitor_months,
        reference_months=settings.monitor_reference_months,
    )
    versions = sorted({r.model_version for r in records if r.model_version})
    meta = {
        "source": "the service's store",
        "generated_at": now.isoformat(timespec="seconds"),
        "model_version": ", ".join(versions) or "no scores",
        "outcome_words": scorer.outcome_words if scorer is not None else OUTCOMES[outcome],
    }
    return monitor(data, windows, thresholds=thresholds_from(settings), meta=meta)


def record_run(
    sessions: sessionmaker[Session],
    document: Mapping[str, Any],
    *,
    actor: str,
    source: str,
    action: str,
    payload: Mapping[str, Any] | None = None,
) -> int:
    """Keep a run's summary in the store and audit it, in one transaction; the summary's id."""
    meta = document.get("meta", {})
    with sessions() as session:
        row = add_monitoring_report(
            session,
            generated_at=utcnow(),
            source=source,
            model_version=meta.get("model_version"),
            alerts=len(document["alerts"]),
            summary=summary_of(document),
        )
        add_audit_event(
            session,
            actor=actor,
            action=action,
            entity_type="monitoring",
            entity_id=str(row.id),
            model_version=meta.get("model_version"),
            payload={
                "source": source,
                "alerts": len(document["alerts"]),
                "months": document["months"],
                **(payload or {}),
            },
        )
        session.commit()
        return row.id


PANEL_ALERTS = 10
"""Alerts listed on the manager page (the report lists every one)."""


def monitoring_panel(session: Session) -> dict[str, Any] | None:
    """The manager page's view of the newest check of the store (None before the first)."""
    report = latest_monitoring_report(session, source=STORE)
    if report is None:
        return None
    alerts = list(report.summary.get("alerts", []))
    return {
        "generated_at": f"{report.generated_at:%Y-%m-%d %H:%M} UTC",
        "model_version": report.model_version,
        "months": report.summary.get("months") or ["–"],
        "reference": report.summary.get("reference", {}),
        "count": report.alerts,
        "shown": alerts[:PANEL_ALERTS],
    }


class MonitorJob:
    """Runs the store's monitoring check at start-up and every ``monitor_interval_seconds``.

    Every worker runs one; a worker skips its turn when the store already holds a run younger
    than the interval, so several workers do not repeat the work. Failures are logged (their
    type only) and the next turn tries again.
    """

    def __init__(self, state: ServiceContext, *, actor: str) -> None:
        self.state = state
        self.actor = actor
        self.interval = state.settings.monitor_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitoring", daemon=True)

    def start(self) -> None:
        """Begin (nothing when the interval is 0)."""
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a run under way finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        self.run_once()
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> int | None:
        """One turn: the check and its stored summary, unless a recent run exists."""
        try:
            with self.state.read_sessions() as session:
                last = latest_monitoring_report(session, source=STORE)
            if last is not None and utcnow() - last.generated_at < timedelta(seconds=self.interval):
                return None
            current = self.state.models.current
            document = store_document(
                settings=self.state.settings,
                read_sessions=self.state.read_sessions,
                scorer=current.scorer if current is not None else None,
            )
            if document is None:
                return None
            report_id = record_run(
                self.state.sessions,
                document,
                actor=self.actor,
                source=STORE,
                action="monitoring.checked",
            )
        except Exception as exc:
            log.warning("monitoring check failed: %s", type(exc).__name__)
            return None
        counts = alert_counts(document)
        log.info(json.dumps({"event": "monitoring_checked", "alerts": counts}))
        return report_id
