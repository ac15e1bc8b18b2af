"""Runtime configuration, read from ``TRIAGE_*`` environment variables."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"
AUDIT_KEY_FILE = "audit_key"
AUDIT_CHECKPOINT_FILE = "audit_checkpoint.json"


def normalise_database_url(url: str) -> str:
    """Return ``url`` with bare PostgreSQL schemes bound to the psycopg 3 driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


class Settings(BaseSettings):
    """Service settings; every field can be set as ``TRIAGE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore")

    var_dir: Path = Path("var")
    database_url: str = ""
    mlflow_tracking_uri: str = ""
    model_name: str = "referral-triage"
    model_alias: str = "champion"
    secret_key: SecretStr | None = None
    rate_limit_key: str = "6000/minute"
    """Requests per API key (a referral system); ``limits`` notation, e.g. ``100/second``."""
    rate_limit_user: str = "600/minute"
    """Requests per signed-in person, API and pages together."""
    rate_limit_sign_in: str = "10/minute"
    """Sign-in attempts per username from one client address, API and pages together; each is
    counted before its password is checked, and a success clears the count (so in effect it
    limits failures in a row)."""
    rate_limit_sign_in_client: str = "60/minute"
    """Sign-in attempts from one client address across all usernames (password spraying);
    every attempt counts, successful or not."""
    sign_in_checks: int = Field(default=2, ge=1, le=64)
    """Passwords (argon2: about 100 ms of every core and 64 MiB each) a worker process checks
    at once; further sign-ins wait, holding no thread, up to 5 s, then get 503."""
    sign_in_checks_per_client: int = Field(default=2, ge=1, le=64)
    """Sign-ins one client address may have in progress at once; more get 429 at once."""
    rate_limit_storage: str = "memory://"
    """Where counts live: per process by default; ``redis://host:6379`` to share across workers."""
    secure_cookies: bool | None = None
    """Mark the page session cookie Secure: None decides per request (served over TLS or not);
    set true behind a TLS proxy that uvicorn is not told to trust."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies whose X-Forwarded-Proto/For uvicorn trusts (comma-separated, or ``*``)."""
    max_referral_age_days: int = Field(default=365, ge=1)
    """A referral whose ``received_at`` is older than this many days is refused (422 on
    ``received_at``): a backfill that old is an extract to load (``triage load``), not an intake."""
    request_timeout_seconds: float = 30.0
    """A request with no reply by then gets 503; its work may still finish (retries are safe)."""
    score_backlog: bool = True
    """Score the store's unscored open referrals in the background at start-up.

    ``triage serve --workers N`` turns it off in every worker but the first, so that the
    backlog is scored once, not once per worker."""
    model_poll_seconds: float = Field(default=30.0, ge=0)
    """How often each worker asks the registry which version is champion, loading it if it
    changed (a promotion, or a first model); 0 turns the check off. A query of about 2 ms."""
    intake_threads: int | None = Field(default=None, ge=1, le=64)
    """Intakes (referrals, events) a worker process stores and scores at once; the rest wait.

    Unset: 1 on SQLite, where parallel intakes in one process only contend for the GIL and
    the one writer (run more worker processes to use more cores); 40 on other databases,
    whose round trips parallel intakes overlap (the size of the thread pool used before)."""

    gc_freeze: bool = True
    """After start-up (and after a model reload), move every object alive to the garbage
    collector's permanent generation (``gc.freeze``). A worker with a model holds about 430,000
    objects, and a full collection over them paused it for about 200 ms; frozen, they are
    skipped. The test suite turns it off (an app per test would freeze the previous ones)."""
    intake_hold_ms: float | None = Field(default=None, ge=0, le=1000)
    """How long a worker's event loop waits on the spot for an intake, when none is in flight.

    Unset: 50 ms on SQLite, 0 elsewhere. While it waits, the loop takes no other request, so
    the intake thread runs without contending for the GIL (a thread that releases the GIL in
    every SQLite call otherwise waits for the loop to give it back); an intake that takes
    longer is then awaited as usual, so the request timeout and ``/healthz`` still answer."""

    audit_key: SecretStr | None = None
    """The key that signs audit checkpoints; unset: ``var_dir/audit_key``, made on first use.
    Kept out of the database, so write access to the store cannot forge a checkpoint."""
    audit_checkpoint_file: Path | None = None
    """Where the signed audit checkpoint lives; unset: ``var_dir/audit_checkpoint.json``. Put
    it on storage the database's users cannot write (another volume, another host's mount)."""
    audit_checkpoint_seconds: float = Field(default=60.0, ge=0)
    """How often each worker signs the audit chain's newest event into the checkpoint (and
    at start-up and shut-down); 0 turns the service's checkpoints off."""

    # Monitoring (issue 24): the service's scheduled check, its windows and alert thresholds
    # (the same defaults as models.monitoring.Thresholds; docs/operations/monitoring.md).
    monitor_interval_seconds: float = Field(default=21600.0, ge=0)
    """How often the service runs the monitoring check on its store (0: never; the tests set
    0 unless a test turns it on). A worker skips a run when another ran within the interval."""
    monitor_months: int = Field(default=6, ge=1, le=36)
    """Calendar months monitored: the latest ones with referrals."""
    monitor_reference_months: int = Field(default=12, ge=1, le=60)
    """Months just before the monitored ones that form the reference."""
    monitor_psi_alert: float = Field(default=0.25, gt=0)
    monitor_psi_warn: float = Field(default=0.10, gt=0)
    monitor_calibration_ratio: float = Field(default=1.5, gt=1)
    monitor_calibration_z: float = Field(default=3.0, gt=0)
    monitor_selection_ratio: float = Field(default=1.5, gt=1)
    monitor_group_selection_change: float = Field(default=0.10, gt=0, lt=1)
    monitor_override_change: float = Field(default=0.15, gt=0, lt=1)
    monitor_unscored_share: float = Field(default=0.05, ge=0, lt=1)
    monitor_min_count: int = Field(default=100, ge=1)
    monitor_suppress_below: int = Field(default=10, ge=1)
    monitor_capacity: float = Field(default=0.10, gt=0, lt=1)

    # --- retention (issue 24, item 3): days each kind is kept, 0 = indefinitely; see
    # docs/operations/retention.md and ``triage retention apply``.
    retention_referral_days: int = Field(default=2190, ge=0)
    """A decided referral and its case record (decisions, outcome, scores and reasons,
    disputes, checks, sign-offs), from its closing decision; open work is never removed."""
    retention_event_days: int = Field(default=2190, ge=0)
    """A partner agency's event, from when it occurred (unless about open work)."""
    retention_identity_task_days: int = Field(default=730, ge=0)
    """A confirmed or rejected "possible same person" task, from its decision."""
    retention_idempotency_key_days: int = Field(default=30, ge=0)
    """A client's idempotency key and the reply it replays, from its first use."""
    retention_audit_days: int = Field(default=2555, ge=0)
    """An audit-log event, from when it was written; at least as long as referrals are kept."""

    def retention_periods(self) -> dict[str, int]:
        """Days per retention kind (``triage.store.retention``'s names), 0 = indefinitely."""
        return {
            "referrals": self.retention_referral_days,
            "events": self.retention_event_days,
            "identity_tasks": self.retention_identity_task_days,
            "idempotency_keys": self.retention_idempotency_key_days,
            "audit_log": self.retention_audit_days,
        }

    @model_validator(mode="after")
    def _audit_outlives_records(self) -> Settings:
        audit, referral = self.retention_audit_days, self.retention_referral_days
        if audit and (referral == 0 or audit < referral):
            kept = "kept indefinitely" if referral == 0 else f"kept {referral} days"
            raise ValueError(
                f"retention_audit_days ({audit}) must be 0 (indefinitely) or at least "
                f"retention_referral_days (referrals are {kept}): the audit log is the record "
                "of what was done with a referral, so it must not go first"
            )
        return self

    # --- end of retention

    # --- Spark (issue 25, item 2): the master ``--engine spark`` runs on unless ``--master``
    # says otherwise; ``local[*]`` uses every core, a cluster's URL (spark://, yarn) its nodes.
    spark_master: str = "local[2]"

    def audit_checkpoint_path(self) -> Path:
        """``audit_checkpoint_file``, or its default under ``var_dir``."""
        return self.audit_checkpoint_file or self.var_dir / AUDIT_CHECKPOINT_FILE

    def get_audit_key(self, *, create: bool = True) -> str | None:
        """The audit checkpoint key; with ``create=False`` None when there is none yet."""
        if self.audit_key is not None:
            return self.audit_key.get_secret_value()
        path = self.var_dir / AUDIT_KEY_FILE
        if not create and not path.exists():
            return None
        return _read_or_create_secret(path)

    def intake_hold_seconds(self) -> float:
        """``intake_hold_ms`` in seconds, or its default for the configured database."""
        if self.intake_hold_ms is not None:
            return self.intake_hold_ms / 1000
        return 0.05 if self.database_url.startswith("sqlite") else 0.0

    def intake_concurrency(self) -> int:
        """``intake_threads``, or its default for the configured database."""
        if self.intake_threads is not None:
            return self.intake_threads
        return 1 if self.database_url.startswith("sqlite") else 40

    @field_validator(
        "rate_limit_key", "rate_limit_user", "rate_limit_sign_in", "rate_limit_sign_in_client"
    )
    @classmethod
    def _parse_rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate such as '600/minute': {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @model_validator(mode="after")
    def _derive_from_var_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'triage.db'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.var_dir / 'mlflow.db'}"
        return self

    def get_secret_key(self) -> str:
        """Return the secret key, generating ``var_dir/secret_key`` (mode 0600) on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _read_or_create_secret(self.var_dir / SECRET_KEY_FILE)


def _read_or_create_secret(path: Path) -> str:
    if path.exists():
        return _read_secret(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write a complete private temp file, then hard-link it into place: concurrent first
    # calls all end up reading the single winner, and nobody ever sees a half-written key.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text(encoding="ascii").strip()
    if not secret:
        raise ValueError(f"{path} is empty; delete it to generate a new key")
    return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; call ``get_settings.cache_clear()`` to reload)."""
    return Settings()
