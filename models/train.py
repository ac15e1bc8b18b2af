"""Training: both families on the same split, a logged choice, evaluation, bands and gates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import CATALOGUE_VERSION
from features.policy import DEFAULT_MODEL_INPUTS
from models.bands import Bands
from models.dataset import DEFAULT_OUTCOME, OUTCOMES, TrainingData, as_matrix, load_training_data
from models.evaluation import (
    auc,
    bootstrap_intervals,
    calibration_slope_intercept,
    compare_labels,
    evaluate,
    group_metrics,
)
from models.families import Challenger, Scorecard, sigmoid
from models.gates import (
    FNR_GROUPINGS,
    GateConfig,
    GateResult,
    check_gates,
    fnr_gates,
    policy_gates,
)
from models.label_choice import label_choice
from models.scorer import Scorer
from models.splits import TEST, TRAIN, VALIDATION, SplitSpec

AUDITED = ("ethnicity", "sex", "disability", "deprivation_decile", "age_band")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run can be told."""

    outcome: str = DEFAULT_OUTCOME
    seed: int = 0
    scorecard_bootstraps: int = 20
    challenger_bootstraps: int = 5
    challenger_margin: float = 0.01
    """The challenger must beat the scorecard's validation AUC by this much to be chosen."""
    evaluation_bootstraps: int = 200
    split: SplitSpec = field(default_factory=SplitSpec)
    gates: GateConfig = field(default_factory=GateConfig)
    without: tuple[str, ...] = ()
    """Signals left out of the model (an ablation: what a group of signals adds)."""

    def inputs(self) -> tuple[str, ...]:
        """The model's signals: the policy's defaults less ``without``."""
        unknown = sorted(set(self.without) - set(DEFAULT_MODEL_INPUTS))
        if unknown:
            raise ValueError(f"cannot leave out signals that are not model inputs: {unknown}")
        return tuple(s for s in DEFAULT_MODEL_INPUTS if s not in self.without)


@dataclass
class TrainResult:
    """The chosen scorer and everything measured on the way."""

    scorer: Scorer
    chosen: str
    reason: str
    validation: dict[str, dict[str, float]]
    test_metrics: dict[str, float]
    intervals: pd.DataFrame
    label_gap: pd.DataFrame | None
    groups: dict[str, pd.DataFrame]
    gates: list[GateResult]
    label_choice: dict[str, Any]
    """What an already-open case explains under each observed label (``models.label_choice``)."""
    data: TrainingData
    test_probability: np.ndarray
    config: TrainConfig
    delay_cost: dict[str, Any] = field(default_factory=dict)
    """Test AUC with features as of recorded_at against as of occurred_at (``delay_cost``)."""

    @property
    def promoted(self) -> bool:
        """Whether every gate passed."""
        return all(g.passed for g in self.gates)


def choose(validation: dict[str, dict[str, float]], config: TrainConfig) -> tuple[str, str]:
    """Prefer the additive scorecard unless the challenger is clearly better; say why.

    Both families are Platt-calibrated on the validation period, so calibration there is
    perfect by construction and cannot separate them: the choice rests on ranking (AUC), and
    calibration is judged by the gates on the unseen test period.
    """
    sc, ch = validation["scorecard"], validation["challenger"]
    gain = ch["auc"] - sc["auc"]
    if gain > config.challenger_margin:
        return "challenger", (
            f"challenger validation AUC {ch['auc']:.3f} beats the scorecard's {sc['auc']:.3f} "
            f"by {gain:.3f} (> margin {config.challenger_margin})"
        )
    return "scorecard", (
        f"the additive scorecard is preferred: validation AUC {sc['auc']:.3f} against the "
        f"challenger's {ch['auc']:.3f}, a gain of {gain:+.3f} within the margin "
        f"{config.challenger_margin}"
    )


FAMILIES: dict[str, Callable[[tuple[str, ...]], Scorecard | Challenger]] = {
    "scorecard": Scorecard.for_signals,
    "challenger": Challenger,
}


def fit_scorer(
    data: TrainingData,
    family: str = "scorecard",
    *,
    n_boot: int | None = None,
    seed: int = 0,
    version: str = "unregistered",
) -> Scorer:
    """One family fitted on the train split, calibrated on validation, banded on validation."""
    signals = tuple(data.features.columns)
    X = {p: as_matrix(data.features.loc[data.part(p)]) for p in (TRAIN, VALIDATION)}
    y = {p: data.label.loc[data.part(p)].to_numpy(dtype=np.int64) for p in (TRAIN, VALIDATION)}
    groups = data.household_id.loc[data.part(TRAIN)].to_numpy()
    boot = {} if n_boot is None else {"n_boot": n_boot}
    model = FAMILIES[family](signals).fit(
        X[TRAIN], y[TRAIN], X[VALIDATION], y[VALIDATION], groups=groups, seed=seed, **boot
    )
    return Scorer(
        model=model,
        bands=Bands.from_scores(sigmoid(model.log_odds(X[VALIDATION]))),
        signals=signals,
        outcome=data.outcome,
        outcome_words=OUTCOMES[data.outcome],
        catalogue_version=CATALOGUE_VERSION,
        data_fingerprint=data.fingerprint,
        version=version,
    )


def train(
    directory: Path, config: TrainConfig | None = None, progress: Progress | None = None
) -> TrainResult:
    """Fit both families, choose, evaluate on the test period, set bands and check gates."""
    config = config or TrainConfig()
    note = progress or (lambda _step: None)
    note("features and splits")
    data = load_training_data(
        directory, outcome=config.outcome, inputs=config.inputs(), spec=config.split
    )
    X = {p: as_matrix(data.features.loc[data.part(p)]) for p in (VALIDATION, TEST)}
    y = {p: data.label.loc[data.part(p)].to_numpy(dtype=np.int64) for p in (VALIDATION, TEST)}
    scorers = {}
    for name, n_boot in (
        ("scorecard", config.scorecard_bootstraps),
        ("challenger", config.challenger_bootstraps),
    ):
        note(name)
        scorers[name] = fit_scorer(data, name, n_boot=n_boot, seed=config.seed)
    validation = {}
    for name, candidate in scorers.items():
        p = sigmoid(candidate.model.log_odds(X[VALIDATION]))
        metrics = evaluate(y[VALIDATION], p)
        metrics["calibration_slope"], metrics["calibration_intercept"] = (
            calibration_slope_intercept(y[VALIDATION], p)
        )
        validation[name] = metrics
    chosen, reason = choose(validation, config)
    scorer = scorers[chosen]
    model = scorer.model

    note("evaluation on the test period")
    test_ids = data.part(TEST)
    p_test = sigmoid(model.log_odds(X[TEST]))
    test_metrics = evaluate(y[TEST], p_test)
    intervals = bootstrap_intervals(
        y[TEST], p_test, groups=data.household_id.loc[test_ids].to_numpy(),
        n_boot=config.evaluation_bootstraps, seed=config.seed,
    )  # fmt: skip
    label_gap = None
    if data.truth is not None:
        label_gap = compare_labels(
            y[TEST], data.truth.loc[test_ids].to_numpy(dtype=np.int64), p_test
        )
    by_group = {
        attribute: group_metrics(
            y[TEST], p_test, data.protected.loc[test_ids, attribute].astype(str)
        )
        for attribute in AUDITED
    }
    gates = check_gates(test_metrics, by_group, config.gates)
    groupings = {
        attribute: data.protected.loc[test_ids, attribute]
        for attribute in (*AUDITED, *FNR_GROUPINGS)
    }
    gates += fnr_gates(y[TEST], p_test, groupings, config.gates)
    gates += policy_gates(model, scorer.signals, X[TEST])
    note("what the sharing delays cost")
    delays = delay_cost(data, chosen, p_test, config)
    return TrainResult(
        scorer=scorer,
        chosen=chosen,
        reason=reason,
        validation=validation,
        test_metrics=test_metrics,
        intervals=intervals,
        label_gap=label_gap,
        groups=by_group,
        gates=gates,
        label_choice=label_choice(data, p_test),
        data=data,
        test_probability=p_test,
        config=config,
        delay_cost=delays,
    )


def delay_cost(
    data: TrainingData, family: str, p_test: np.ndarray, config: TrainConfig
) -> dict[str, Any]:
    """Test AUC of the chosen family with features as of recorded_at (what the service knows
    at a referral) against as of occurred_at (if agencies shared records at once), both
    against the latent truth when the extract has it, else the observed label."""
    test_ids = data.part(TEST)
    target = data.truth if data.truth is not None else data.label
    y = target.loc[test_ids].to_numpy(dtype=np.int64)
    as_recorded = auc(y, p_test)
    as_occurred = as_recorded
    if data.features_without_delays is not None:
        undelayed = replace(data, features=data.features_without_delays)
        n_boot = (
            config.scorecard_bootstraps if family == "scorecard" else config.challenger_bootstraps
        )
        refit = fit_scorer(undelayed, family, n_boot=n_boot, seed=config.seed)
        X = as_matrix(data.features_without_delays.loc[test_ids])
        as_occurred = auc(y, sigmoid(refit.model.log_odds(X)))
    return {
        "against": "latent truth" if data.truth is not None else "observed label",
        "events_recorded_late": data.events_recorded_late,
        "auc_as_recorded": as_recorded,
        "auc_if_no_delays": as_occurred,
        "cost": as_occurred - as_recorded,
    }
