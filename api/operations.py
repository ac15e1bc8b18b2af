"""Operations: liveness, readiness, Prometheus metrics, security headers and JSON logs.

None of it reads or writes personal data: routes are logged and measured by their template
(``/v1/referrals/{referral_id}``), never by the concrete path or query string.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel
from sqlalchemy import func, select, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ServiceState
from models.monitoring import ALERT_KINDS
from triage.store import QueueEntryRow, ScoreRow, touch_store_probe
from triage.store.engine import StoreFailure, store_failure, store_health
from triage.store.monitoring import latest_monitoring_report

access_log = logging.getLogger("api.access")
log = logging.getLogger(__name__)

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Pages: their own stylesheet, inline SVG charts, forms posting only here; no script at all.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The interactive docs (api/docs.py): scripts from this origin only, never a CDN or inline;
# inline styles, since Swagger UI and ReDoc set them from script; ReDoc's search runs in a blob:
# worker. Framing stays forbidden everywhere.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"

router = APIRouter(tags=["service"])


class StoreCollector(Collector):
    """Gauges read from the store at scrape time, so every worker reports the same numbers."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Scores by band, open referrals by band, unscored open referrals, the model version."""
        state: ServiceState | None = getattr(self.app.state, "service", None)
        if state is None:
            return
        scores = GaugeMetricFamily(
            "triage_scores", "Scores recorded, by band (all time).", labels=["band"]
        )
        queued = GaugeMetricFamily(
            "triage_queue_open", "Open referrals in the queue, by band.", labels=["band"]
        )
        unscored = GaugeMetricFamily(
            "triage_queue_unscored", "Open referrals waiting for a score (no model or failed)."
        )
        model = GaugeMetricFamily(
            "triage_model_info", "The champion model (1 while loaded).", labels=["version"]
        )
        try:
            with state.read_sessions() as session:
                by_band = session.execute(
                    select(ScoreRow.band, func.count()).group_by(ScoreRow.band)
                ).all()
                open_by_band = session.execute(
                    select(QueueEntryRow.band, func.count()).group_by(QueueEntryRow.band)
                ).all()
                waiting = session.scalar(
                    select(func.count()).where(QueueEntryRow.score_id.is_(None))
                )
        except Exception as exc:
            log.warning("metrics: store unavailable (%s)", type(exc).__name__)
            return
        for band, count in by_band:
            scores.add_metric([band], count)
        for queue_band, count in open_by_band:
            queued.add_metric([queue_band or "unscored"], count)
        unscored.add_metric([], waiting or 0)
        current = state.models.current
        if current is not None:
            model.add_metric([current.scorer.version], 1)
        yield from (scores, queued, unscored, model)


class MonitoringCollector(Collector):
    """The newest monitoring check of the store: alerts by kind, each signal's PSI, unscored."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Gauges from the newest ``monitoring_reports`` row of the store (none before a run)."""
        state: ServiceState | None = getattr(self.app.state, "service", None)
        if state is None:
            return
        try:
            with state.read_sessions() as session:
                report = latest_monitoring_report(session, source="store")
        except Exception as exc:
            log.warning("metrics: monitoring summary unavailable (%s)", type(exc).__name__)
            return
        if report is None:
            return
        summary = report.summary
        alerts = GaugeMetricFamily(
            "triage_monitoring_alerts",
            "Alerts raised by the newest monitoring check, by kind (0 when none).",
            labels=["kind"],
        )
        counts = summary.get("alert_counts", {})
        for kind in ALERT_KINDS:  # every kind has a gauge, 0 when none was raised
            alerts.add_metric([kind], counts.get(kind, 0))
        psi = GaugeMetricFamily(
            "triage_monitoring_signal_psi",
            "Each signal's PSI against the reference in the latest monitored month.",
            labels=["signal"],
        )
        for signal, value in sorted(summary.get("signal_psi", {}).items()):
            psi.add_metric([signal], value)
        unscored = GaugeMetricFamily(
            "triage_monitoring_unscored_share",
            "Share of referrals without a score in the latest monitored month.",
        )
        if summary.get("unscored_share") is not None:
            unscored.add_metric([], summary["unscored_share"])
        when = GaugeMetricFamily(
            "triage_monitoring_last_run_timestamp_seconds", "When the newest check ran (Unix time)."
        )
        when.add_metric([], report.generated_at.timestamp())
        yield from (alerts, psi, unscored, when)


def install_operations(app: FastAPI) -> None:
    """Add the health, readiness and metrics routes and the operations middleware."""
    registry = CollectorRegistry()
    latency = Histogram(
        "triage_http_request_duration_seconds",
        "Request latency by route template, method and status.",
        ["method", "route", "status"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    registry.register(StoreCollector(app))
    registry.register(MonitoringCollector(app))
    app.state.metrics_registry = registry
    app.add_middleware(OperationsMiddleware, latency=latency)
    app.include_router(router)


class Liveness(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the service can take work, and what is missing."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, str]


@router.get("/healthz", response_model=Liveness, summary="Liveness (no dependencies)")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the database answers and takes writes; no model is 'degraded', not down",
    responses={
        503: {
            "model": Readiness,
            "description": "The database does not answer, or its writes fail (e.g. disk full).",
        }
    },
)
def readyz(request: Request) -> JSONResponse:
    """200 ``ok`` or ``degraded`` (no model: intake goes on, unscored); 503 without a database.

    While this worker's last write failed (disk full, I/O error), the database is ``failing``
    with its reason, until a write commits again: this check tries one itself.
    """
    state: ServiceState = request.app.state.service
    checks: dict[str, Any] = {}
    try:
        with state.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.error("readiness: database check failed (%s)", type(exc).__name__)
        checks["database"] = "unavailable"
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    if store_health(state.engine).failure is not None:
        failure = _probe_writes(state)
        if failure is not None:
            checks |= {"database": "failing", "database_reason": failure.reason}
            return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    current = state.models.current
    checks["model"] = "ok" if current is not None else "missing"
    status = "ok" if current is not None else "degraded"
    return JSONResponse({"status": status, "checks": checks})


def _probe_writes(state: ServiceState) -> StoreFailure | None:
    """Commit one small write; the failure if it does not commit (the engine records either)."""
    try:
        with state.sessions() as session:
            touch_store_probe(session)
            session.commit()
    except Exception as exc:
        failure = store_failure(exc) or StoreFailure("write_failed", type(exc).__name__)
        log.error("readiness: write probe failed (%s, %s)", failure.reason, failure.code)
        return failure
    return store_health(state.engine).failure


@router.get(
    "/metrics",
    summary="Prometheus metrics (no personal data)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Request latency, scores by band, unscored referrals, the model version and the newest
    monitoring check's alerts."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class OperationsMiddleware:
    """Security headers on every reply; latency and a JSON access line per request."""

    def __init__(self, app: ASGIApp, latency: Histogram) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request, add the headers, record the route template and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path = scope.get("path", "")
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers += security_headers(path, tls=tls)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.latency.labels(method, route, str(status)).observe(elapsed)
            state = scope.get("state") or {}
            access_log.info(
                json.dumps(
                    {
                        "event": "request",
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "actor": state.get("actor"),
                    }
                )
            )


def security_headers(path: str, *, tls: bool) -> list[tuple[bytes, bytes]]:
    """nosniff, no referrer, no framing, a CSP per kind of path, no caching; HSTS over TLS."""
    if path in DOCS_PATHS:
        policy = DOCS_CSP
    elif path.startswith("/v1/") or path in OPERATIONS_PATHS:
        policy = API_CSP
    else:
        policy = PAGE_CSP
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", policy.encode()),
    ]
    # Case data must not linger in browser or proxy caches; only the stylesheet may be cached.
    if not path.startswith("/static/"):
        headers.append((b"cache-control", b"no-store"))
    if tls:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger and message (messages carry no PII)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON; a message that is itself JSON is merged in."""
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            entry |= parsed
        else:
            entry["message"] = message
        if record.exc_info:
            # The type only: exception text and tracebacks can quote request data.
            entry["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(entry)


def configure_json_logs() -> None:
    """Under a server, log JSON lines and drop uvicorn's access log (it prints raw paths).

    Under pytest the root logger already has handlers, and nothing is changed.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        for existing in logging.getLogger(name).handlers:
            existing.setFormatter(JsonFormatter())
    logging.getLogger("uvicorn.access").disabled = True
