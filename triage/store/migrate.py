"""Run the store's Alembic migrations programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from triage.settings import normalise_database_url
from triage.store.engine import make_engine

PACKAGE_DIR = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """Return an Alembic config for the packaged migrations, pointed at ``url``."""
    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    # ConfigParser interpolates '%', which URL-encoded passwords and options contain.
    config.set_main_option("sqlalchemy.url", normalise_database_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (a no-op when already there)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` drops everything)."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """Return the revision the database at ``url`` is at, or None when unmigrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
