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


def test_a_feature_table_of_another_extract_is_refused(tmp_path):
    import pandas as pd
    import typer

    from cli.features_build import read_feature_table

    pd.DataFrame({"referral_id": ["REF-1", "REF-2", "REF-3"]}).to_parquet(
        tmp_path / "referrals.parquet"
    )
    table = pd.DataFrame({"a": [0.0, 1.0, 2.0]}, index=pd.Index(["REF-1", "REF-2", "REF-3"]))
    table.index.name = "referral_id"
    table.to_parquet(tmp_path / "same.parquet")
    assert list(read_feature_table(tmp_path / "same.parquet", ["a"], tmp_path).index) == [
        "REF-1", "REF-2", "REF-3"
    ]  # fmt: skip
    for rows in (["REF-1", "REF-2"], ["REF-1", "REF-2", "REF-9"], ["REF-1", "REF-1", "REF-2"]):
        other = table.iloc[: len(rows)].set_axis(pd.Index(rows, name="referral_id"))
        other.to_parquet(tmp_path / "other.parquet")
        with pytest.raises(typer.Exit) as refused:
            read_feature_table(tmp_path / "other.parquet", ["a"], tmp_path)
        assert refused.value.exit_code == 2
