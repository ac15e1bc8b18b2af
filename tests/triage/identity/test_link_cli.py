"""``triage link train`` and ``triage link run`` on a small extract of identity records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from identity_world import make_world
from typer.testing import CliRunner

from cli.app import app
from triage.settings import get_settings


def test_link_train_then_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    extract = tmp_path / "extract"
    extract.mkdir()
    world = make_world(200, seed=5)
    world.records.to_parquet(extract / "identity_records.parquet", index=False)
    world.truth.to_parquet(extract / "identity_truth.parquet", index=False)
    runner = CliRunner()

    trained = runner.invoke(app, ["link", "train", "--extract", str(extract)])
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "var" / "identity" / "model.json").exists()

    ran = runner.invoke(app, ["link", "run", "--extract", str(extract)])
    assert ran.exit_code == 0, ran.output
    clusters = pd.read_parquet(extract / "clusters.parquet")
    assert set(clusters["record_id"]) == set(world.records["record_id"])
    assert "pairwise precision" in ran.output and "recall" in ran.output
    get_settings.cache_clear()


def test_link_run_without_records_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["link", "run", "--extract", str(tmp_path)])
    assert result.exit_code == 2
    assert "No identity records" in result.output


def test_default_model_falls_back_to_the_packaged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triage.identity import default_model
    from triage.identity.store import PACKAGED_MODEL

    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        model = default_model()
        assert model.settings["unique_id_column_name"] == "record_id"
        assert PACKAGED_MODEL.exists()
    finally:
        get_settings.cache_clear()
