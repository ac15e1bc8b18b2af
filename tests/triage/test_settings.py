"""Settings: environment prefix, derived URLs, and the generated secret key."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from triage.settings import Settings, get_settings, normalise_database_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "SECRET_KEY", "VAR_DIR", "MODEL_NAME"):
        monkeypatch.delenv(f"TRIAGE_{name}", raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_derive_from_var_dir() -> None:
    settings = Settings()
    assert settings.var_dir == Path("var")
    assert settings.database_url == "sqlite:///var/triage.db"
    assert settings.mlflow_tracking_uri == "sqlite:///var/mlflow.db"
    assert settings.model_name == "referral-triage"
    assert settings.model_alias == "champion"
    assert settings.secret_key is None


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TRIAGE_MODEL_NAME", "other")
    settings = get_settings()
    assert settings.database_url == "sqlite:///elsewhere.db"
    assert settings.var_dir == tmp_path / "state"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    assert settings.model_name == "other"


def test_get_settings_is_cached() -> None:
    assert get_settings() is get_settings()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///var/triage.db", "sqlite:///var/triage.db"),
    ],
)
def test_postgres_url_uses_psycopg3(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    assert normalise_database_url(url) == expected
    monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
    assert Settings().database_url == expected


def test_secret_generated_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    secret = settings.get_secret_key()
    path = tmp_path / "var" / "secret_key"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 64
    assert Settings(var_dir=tmp_path / "var").get_secret_key() == secret
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


def test_secret_not_hard_coded(tmp_path: Path) -> None:
    first = Settings(var_dir=tmp_path / "a").get_secret_key()
    second = Settings(var_dir=tmp_path / "b").get_secret_key()
    assert first != second


def test_secret_from_env_wins_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRIAGE_SECRET_KEY", "from-the-environment")
    settings = Settings(var_dir=tmp_path / "var")
    assert isinstance(settings.secret_key, SecretStr)
    assert "from-the-environment" not in repr(settings)
    assert settings.get_secret_key() == "from-the-environment"
    assert not (tmp_path / "var").exists()


def test_concurrent_first_use_agrees_on_one_secret(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    with ThreadPoolExecutor(max_workers=8) as pool:
        secrets = set(pool.map(lambda _: settings.get_secret_key(), range(32)))
    assert len(secrets) == 1
    assert secrets == {(tmp_path / "var" / "secret_key").read_text().strip()}


def test_empty_secret_file_refused(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        Settings(var_dir=tmp_path).get_secret_key()
