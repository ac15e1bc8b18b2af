"""``triage audit``'s engine options: bad input exits 2 naming the option, before any work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.app import app


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--engine", "pandas"], "--engine"),
        (["--engine", "duckdb", "--master", "local[2]"], "--master"),
        (["--engine", "spark", "--master", "local[two]"], "--master"),
        (["--engine", "spark", "--master", "http://cluster"], "--master"),
    ],
)
def test_bad_engine_options_exit_2_naming_the_option(tmp_path, extra, named):
    args = ["audit", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *extra]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2, run.output
    assert named in run.output
    assert extra[-1] in run.output.replace("\n", "")  # the value as typed, brackets too
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine", ["numpy", "duckdb", "spark"])
def test_a_missing_extract_is_refused_on_every_engine(tmp_path, engine):
    args = ["audit", "--data", str(tmp_path / "none"), "--out", str(tmp_path), "--engine", engine]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2 and "No extract at" in run.output


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--engine", "spark", "--features", "f.parquet"], "--features is not for --engine spark"),
        (["--features", "none.parquet"], "No feature table at"),
    ],
)
def test_a_feature_table_is_refused_where_it_cannot_serve(tmp_path, extra, said):
    (tmp_path / "referrals.parquet").touch()
    (tmp_path / "f.parquet").touch()
    extra = [str(tmp_path / a) if a.endswith(".parquet") else a for a in extra]
    args = ["audit", "--data", str(tmp_path), "--out", str(tmp_path / "out"), *extra]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2 and said in " ".join(run.output.split()), run.output
    assert not (tmp_path / "out").exists()
