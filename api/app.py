"""The FastAPI app factory: settings, one engine per app, the champion model, the routers."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.pool import SingletonThreadPool

from api.deps import SYSTEM, ServiceState
from api.docs import install_docs
from api.errors import MAX_BODY_BYTES, BodyLimitMiddleware, install_error_handlers
from api.operations import configure_json_logs, install_operations
from api.ratelimit import RateLimits
from api.routes import auth, checks, events, fairness, identity, model, queue, referrals, research
from api.schemas import ErrorOut
from api.timeouts import TimeoutMiddleware
from api.web import error_page, install_pages
from service.audit import AuditCheckpointer
from service.champion import (
    ChampionProbe,
    ModelHolder,
    ScorerLoader,
    champion_loader,
    champion_probe,
    freeze_garbage_collector,
)
from service.linker import Resolver
from service.monitoring import MonitorJob
from service.scoring import flag_unscored_from_history, score_backlog, sync_queue
from triage.identity import default_model
from triage.pseudonyms import pseudonym_key
from triage.schema import AgencyEventIn
from triage.settings import Settings, get_settings
from triage.store import make_engine, make_read_engine, session_factory

log = logging.getLogger(__name__)

DESCRIPTION = """\
Referral triage for a child-protection front door (synthetic data only). The service
**supports professional judgement and never replaces it**: a referral leaves the queue only
through a recorded human decision.

Errors are `{"error": {"code", "message"}}`; a 422 adds `"errors": [{"field", "reason"}]`.
Bodies over 64 KiB get 413.
"""


def create_app(
    settings: Settings | None = None,
    scorer_loader: ScorerLoader | None = None,
    *,
    score_backlog_on_start: bool | None = None,
    probe: ChampionProbe | None = None,
    identity_resolver: Resolver | None = None,
) -> FastAPI:
    """Build the app; ``scorer_loader`` defaults to the settings' MLflow champion.

    ``score_backlog_on_start`` defaults to ``settings.score_backlog``. ``probe`` (which
    version is champion now) defaults to the registry's alias with the default loader, and to
    none with an injected one. ``identity_resolver``: the linker for children sent without
    an id (default: ``triage.identity.default_model`` for the settings' ``var_dir``).
    """
    settings = settings or get_settings()
    if score_backlog_on_start is None:
        score_backlog_on_start = settings.score_backlog
    loader = scorer_loader if scorer_loader is not None else champion_loader(settings)
    if probe is None and scorer_loader is None:
        probe = champion_probe(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_json_logs()
        state = _start(settings, loader)
        # The trained identity model (``triage link train``), else the packaged one.
        state.identity = (
            identity_resolver if identity_resolver is not None else default_model(settings.var_dir)
        )
        app.state.service = state
        freeze_garbage_collector(settings)
        stop = threading.Event()
        worker = threading.Thread(
            target=_model_upkeep,
            args=(state, stop, probe),
            kwargs={"score_backlog": score_backlog_on_start},
            name="model-upkeep",
            daemon=True,
        )
        worker.start()
        checkpointer = AuditCheckpointer(state)
        checkpointer.start()
        monitoring = MonitorJob(state, actor=SYSTEM.name)
        monitoring.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=30)
            checkpointer.stop()
            monitoring.stop()
            # Requests have finished by now; what still waits was abandoned by a timeout (the
            # client got a 503 and retries), so it is cancelled rather than waited for.
            state.intake_executor.shutdown(wait=True, cancel_futures=True)
            state.engine.dispose()
            state.read_engine.dispose()
            if state.loop_read_sessions is not None:
                state.loop_read_sessions.kw["bind"].dispose()

    app = FastAPI(
        title="Referral triage",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # The docs are served from packaged assets under their own CSP (api/docs.py), never
        # FastAPI's CDN pages; no OAuth2 redirect page, since the API takes bearer tokens.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # Any route can get these before its own code runs: a body that is not UTF-8 JSON, or
        # a Content-Length that is not a number.
        responses={400: {"model": ErrorOut, "description": "The request cannot be parsed."}},
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(TimeoutMiddleware, seconds=settings.request_timeout_seconds)
    install_error_handlers(app, error_page)
    install_operations(app)
    for module in (auth, referrals, events, queue, identity, model, fairness, research, checks):
        app.include_router(module.router)
    install_pages(app)
    install_docs(app)

    @app.get("/v1/health", tags=["service"], summary="Liveness")
    def health() -> dict[str, Any]:
        """The service answers; says whether a model is loaded."""
        holder = app.state.service.models
        return {"status": "ok", "model_loaded": holder.current is not None}

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented hook
    return app


def _start(settings: Settings, loader: ScorerLoader) -> ServiceState:
    """Engines, sessions, the model, and the queue brought up to date with the store."""
    engine = make_engine(settings.database_url)
    read_engine = make_read_engine(settings.database_url)
    loop_engine = None
    if (
        settings.intake_hold_seconds() > 0
        and settings.database_url.startswith("sqlite")
        and settings.rate_limit_storage.startswith("memory")
    ):
        loop_engine = make_read_engine(settings.database_url, poolclass=SingletonThreadPool)
    state = ServiceState(
        settings=settings,
        engine=engine,
        read_engine=read_engine,
        sessions=session_factory(engine),
        read_sessions=session_factory(read_engine),
        loop_read_sessions=session_factory(loop_engine) if loop_engine is not None else None,
        models=ModelHolder(loader),
        limits=RateLimits(settings, key=pseudonym_key(settings.get_secret_key())),
        intake_executor=ThreadPoolExecutor(
            settings.intake_concurrency(), thread_name_prefix="intake"
        ),
        secret_key=settings.get_secret_key(),
    )
    state.models.load()
    with state.sessions() as session:
        added = sync_queue(session)
        session.commit()
    if added:
        log.info("queued %d open referrals found in the store", added)
    return state


def _model_upkeep(
    state: ServiceState, stop: threading.Event, probe: ChampionProbe | None, *, score_backlog: bool
) -> None:
    """Score the start-up backlog, then load each newly promoted champion as it appears.

    Only the worker that scores the backlog (one of ``triage serve --workers N``) scores the
    queue: at each check it also scores what another model version scored meanwhile (another
    worker before its own check, an intake just before the swap). A referral that failed
    with the current model is not tried again until the model changes.
    """
    failed: dict[str, set[str]] = {}  # model version: referrals that failed with it
    if score_backlog:
        _sweep(state, stop, failed, sync=False)
    interval = state.settings.model_poll_seconds
    if probe is None or interval <= 0:
        return
    registry_failing = False
    while not stop.wait(interval):
        try:
            promoted = state.models.load_if_promoted(probe)
        except Exception as exc:  # the registry may be away for a while: keep the model
            if not registry_failing:
                log.warning("champion check failed, model kept: %s", type(exc).__name__)
            registry_failing = True
            continue
        if registry_failing:
            log.info("champion check answers again")
            registry_failing = False
        if promoted:
            freeze_garbage_collector(state.settings, again=True)
        if score_backlog:
            _sweep(state, stop, failed, sync=promoted)


def _sweep(
    state: ServiceState, stop: threading.Event, failed: dict[str, set[str]], *, sync: bool
) -> None:
    """Score the queue's unscored and outdated referrals, skipping known failures."""
    model = state.models.current
    if model is None:
        if not sync:  # at start-up: the safety rules still read the history, model or not
            try:
                changed = flag_unscored_from_history(state.sessions, stop=stop)
            except Exception as exc:
                log.error("reading history for the safety rules stopped: %s", type(exc).__name__)
                return
            if changed:
                log.info("safety rules: %d unscored referrals flagged from their history", changed)
        return
    version = model.scorer.version
    known = failed.setdefault(version, set())
    for other in [v for v in failed if v != version]:
        del failed[other]
    try:
        if sync:
            with state.sessions() as session:
                sync_queue(session)
                session.commit()
        result = score_backlog(
            state.sessions, model, actor=SYSTEM.name, stop=stop, failed_before=known
        )
    except Exception as exc:
        log.error("backlog scoring stopped: %s", type(exc).__name__)
        return
    if result.scored or result.failed:
        log.info("backlog: scored %d, failed %d", result.scored, result.failed)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the event schema the events route validates by hand."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        event_schema = AgencyEventIn.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(event_schema.pop("$defs", {}))
        components["AgencyEventIn"] = event_schema
        app.openapi_schema = schema
    return app.openapi_schema
