"""Monitoring: PSI on documented bins, the sections' alerts, small cells, and an injected drift
in a synthetic world caught as an alert while the same world undrifted raises none."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app as cli
from models.dataset import load_training_data
from models.monitoring import (
    MonitorData,
    Thresholds,
    default_windows,
    extract_data,
    monitor,
    write_report,
)
from models.monitoring.psi import FLOOR, bin_shares, psi, psi_of, reference_edges
from models.scorer import Scorer
from models.train import fit_scorer
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

DRIFT_FROM = date(2026, 6, 1)
DRIFTED = {"family_notice_probability": 1.0}
"""Relatives notice every episode from June 2026: their referrals multiply."""


def test_psi_is_near_zero_for_one_population_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=20_000)
    assert psi_of(reference, rng.normal(size=20_000)) < 0.01
    # A shift of one standard deviation is a well-known major shift (PSI about 1).
    assert psi_of(reference, rng.normal(loc=1.0, size=20_000)) > 0.25


def test_bins_are_the_reference_deciles_merged_for_few_values() -> None:
    values = np.arange(1000, dtype=float)
    edges = reference_edges(values, 10)
    assert edges.size == 9
    shares = bin_shares(values, edges)
    assert np.allclose(shares[:-1], 0.1, atol=0.002) and shares[-1] == 0  # last: missing
    binary = np.r_[np.zeros(900), np.ones(100)]
    assert list(reference_edges(binary, 10)) == [0.0]  # two bins: 0, and above 0


def test_psi_of_a_binary_signal_is_the_formula_on_its_two_shares() -> None:
    reference = np.r_[np.zeros(900), np.ones(100)]
    current = np.r_[np.zeros(600), np.ones(400)]
    expected = (0.6 - 0.9) * math.log(0.6 / 0.9) + (0.4 - 0.1) * math.log(0.4 / 0.1)
    assert psi_of(reference, current) == pytest.approx(expected)


def test_missing_values_have_a_bin_and_an_empty_bin_counts_as_the_floor() -> None:
    reference = np.arange(100, dtype=float)
    current = np.r_[np.arange(50, dtype=float), np.full(50, np.nan)]
    edges = reference_edges(reference)
    shares = bin_shares(current, edges)
    assert shares[-1] == pytest.approx(0.5)
    # The reference has no missing value: its share is floored, not zero (no division by 0).
    assert math.isfinite(psi(bin_shares(reference, edges), shares))
    assert psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(
        2 * (1 - FLOOR) * math.log(1 / FLOOR)
    )


def _frame(
    n_per_month: int = 400, *, seed: int = 1, months: int = 18
) -> tuple[MonitorData, pd.DatetimeIndex]:
    """A stable population over ``months`` months: two signals, a calibrated score, groups."""
    rng = np.random.default_rng(seed)
    starts = pd.date_range("2025-01-01", periods=months, freq="MS", tz="UTC")
    received = np.concatenate(
        [s + pd.to_timedelta(rng.uniform(0, 27, n_per_month), unit="D") for s in starts]
    )
    n = received.size
    index = pd.Index([f"R-{i}" for i in range(n)])
    count = rng.poisson(1.5, n).astype(float)
    flag = (rng.random(n) < 0.2).astype(float)
    p = 1 / (1 + np.exp(-(-2.5 + 0.4 * count + 0.8 * flag)))
    label = (rng.random(n) < p).astype(float)
    agreement = np.where(rng.random(n) < 0.2, "should_be_higher", "agree").astype(object)
    groups = pd.DataFrame(
        {"referrer_type": rng.choice(["police", "school", "health"], n)}, index=index
    )
    data = MonitorData(
        received_at=pd.Series(received, index=index),
        signals=pd.DataFrame({"count": count, "flag": flag}, index=index),
        probability=pd.Series(p, index=index),
        label=pd.Series(label, index=index),
        agreement=pd.Series(agreement, index=index),
        groups=groups,
    )
    return data, starts


def _in_month(data: MonitorData, month: str) -> pd.Series:
    return pd.to_datetime(data.received_at, utc=True).dt.strftime("%Y-%m") == month


def test_a_stable_population_raises_no_alert() -> None:
    data, _ = _frame()
    document = monitor(data, default_windows(data.received_at))
    assert document["alerts"] == []
    assert len(document["months"]) == 6
    assert all(r["level"] == "ok" for r in document["unscored"])


def test_unscored_referrals_and_overrides_raise_alerts_in_their_month_only() -> None:
    data, _ = _frame()
    last = default_windows(data.received_at).months[-1]
    month = _in_month(data, last)
    rng = np.random.default_rng(3)
    unscored = month & (rng.random(month.size) < 0.3)
    probability = data.probability.mask(unscored)
    signals = data.signals.mask(unscored, axis=0)
    agreement = data.agreement.where(~month, "should_be_lower")
    changed = MonitorData(
        data.received_at, signals, probability, data.label, agreement, data.groups
    )
    document = monitor(changed, default_windows(data.received_at))
    kinds = {(a["kind"], a["month"]) for a in document["alerts"]}
    assert ("unscored", last) in kinds and ("overrides", last) in kinds
    assert all(a["month"] == last for a in document["alerts"])


def test_a_shifted_score_raises_score_drift_selection_and_calibration_alerts() -> None:
    data, _ = _frame()
    last = default_windows(data.received_at).months[-1]
    month = _in_month(data, last).to_numpy()
    lifted = data.probability.where(~month, np.minimum(data.probability * 3, 0.99))
    changed = MonitorData(
        data.received_at, data.signals, lifted, data.label, data.agreement, data.groups
    )
    alerts = monitor(changed, default_windows(data.received_at))["alerts"]
    kinds = {a["kind"] for a in alerts}
    assert {"score_drift", "selection", "calibration"} <= kinds
    # A manager reads words first, the figure in brackets after them.
    [score] = [a for a in alerts if a["kind"] == "score_drift"]
    assert score["message"].startswith("The model's scores have shifted a lot since the ")
    assert score["message"].endswith(f"(PSI {score['value']:.2f}; above 0.25 is a large shift)")
    calibration = next(a for a in alerts if a["kind"] == "calibration")
    assert re.fullmatch(
        r"For .+, the outcome happened (more|less) often than the model predicted in "
        r"\d{4}-\d\d \(\d+\.\d% of referrals against \d+\.\d% predicted\)",
        calibration["message"],
    ), calibration["message"]


def test_small_groups_are_withheld_or_flagged_and_never_alert() -> None:
    data, _ = _frame()
    groups = data.groups.copy()
    rare = groups.index[:: len(groups) // 40][:40]  # a few a month at most
    groups.loc[rare, "referrer_type"] = "anonymous"
    small = MonitorData(
        data.received_at, data.signals, data.probability, data.label, data.agreement, groups
    )
    t = Thresholds()
    document = monitor(small, default_windows(data.received_at), thresholds=t)
    rows = [
        r for r in document["selection"]["groups"]["referrer_type"] if r["group"] == "anonymous"
    ]
    assert rows and all(r["level"] == "small" for r in rows)
    assert all(r["n"] is None and r["rate"] is None for r in rows)  # fewer than 10: withheld
    assert not [a for a in document["alerts"] if "anonymous" in a["subject"]]


# An injected drift in the synthetic world --------------------------------------------------


def _world(directory: Path, drift: dict[str, float]) -> Path:
    params = WorldParams(
        n_referrals=12_000,
        seed=7,
        years=5,
        drift=drift,
        drift_from=DRIFT_FROM if drift else None,
    )
    write_extract(generate_world(params), directory)
    return directory


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Scorer]:
    """One seed, undrifted and drifted from June 2026, and a model fitted on the undrifted."""
    base = _world(tmp_path_factory.mktemp("undrifted"), {})
    drifted = _world(tmp_path_factory.mktemp("drifted"), DRIFTED)
    return base, drifted, fit_scorer(load_training_data(base), n_boot=2, version="test/1")


def test_the_drift_world_differs_only_from_the_drift_date() -> None:
    with pytest.raises(ValueError, match="drift_from"):
        WorldParams(drift={"family_notice_probability": 0.5})
    with pytest.raises(ValueError, match="cannot drift"):
        WorldParams(drift={"seed": 1.0}, drift_from=DRIFT_FROM)
    with pytest.raises(ValueError, match="at most 1"):
        WorldParams(drift={"family_notice_probability": 2.0}, drift_from=DRIFT_FROM)


def test_triage_synth_refuses_a_drift_it_cannot_make(tmp_path: Path) -> None:
    runner = CliRunner()
    for args, reason in (
        (["--drift", "seed=3", "--drift-from", "2026-01-01"], "cannot drift"),
        (
            ["--drift", "family_notice_probability=high", "--drift-from", "2026-01-01"],
            "KNOB=NUMBER",
        ),
        (["--drift", "family_notice_probability=0.5", "--drift-from", "June"], "ISO date"),
    ):
        result = runner.invoke(cli, ["synth", "--out", str(tmp_path), "--referrals", "100", *args])
        assert result.exit_code == 2 and reason in result.output, result.output
    assert not list(tmp_path.iterdir())


def test_an_injected_drift_is_an_alert_and_the_undrifted_world_raises_none(
    worlds: tuple[Path, Path, Scorer], tmp_path: Path
) -> None:
    base, drifted, scorer = worlds
    quiet = extract_data(base, scorer)
    assert monitor(quiet, default_windows(quiet.received_at))["alerts"] == []

    loud = extract_data(drifted, scorer)
    windows = default_windows(loud.received_at)
    document = monitor(loud, windows, meta={"source": "drifted world"})
    drift = [a for a in document["alerts"] if a["kind"] == "signal_drift"]
    relatives = {"referrer_relative_friend", "relative_friend_concerns_365d"}
    assert relatives <= {a["subject"] for a in drift}
    concerns = next(a for a in drift if a["subject"] == "relative_friend_concerns_365d")
    assert concerns["message"].startswith(
        "The values of “relative friend concerns in the last 365 days” have shifted a lot since "
        "the reference period"
    )
    assert concerns["message"].endswith(
        f"(PSI {concerns['value']:.2f}; above 0.25 is a large shift)"
    )
    # Nothing changed before June 2026: no alert names an earlier month.
    before = [m for m in windows.months if m < DRIFT_FROM.strftime("%Y-%m")]
    assert before and not [a for a in document["alerts"] if a["month"] in before]

    json_path, html_path = write_report(document, tmp_path)
    reread = json.loads(json_path.read_text(encoding="utf-8"))
    assert reread["alerts"] == document["alerts"]
    html = html_path.read_text(encoding="utf-8")
    assert f"{len(document['alerts'])} alerts" in html and "data:image/png;base64," in html
    assert "referrer_relative_friend" in html
    # Aggregates only: no referral, child or household identifier leaves the monitor.
    assert "R-" not in html and not any(i in html for i in loud.received_at.index[:50])
