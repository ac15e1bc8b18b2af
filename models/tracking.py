"""MLflow 3: log a training run, register the model, move ``champion`` only when gates pass."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

from models.card import card_json, card_markdown
from models.plots import effects_plot, reliability_plot, roc_plot
from models.scorer import Scorer
from models.splits import TEST
from models.train import TrainResult

EXPERIMENT = "referral-triage"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")


def configure_mlflow(tracking_uri: str) -> None:
    """Point MLflow at the tracking store with telemetry and the offline pip check off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)


def artifact_root(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite tracking database (``mlartifacts/``), not in the working dir."""
    if not tracking_uri.startswith("sqlite:///"):
        return None  # a server or PostgreSQL store has its own artifact root
    database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return (database.parent / "mlartifacts").as_uri()


def _use_experiment(tracking_uri: str) -> None:
    """Create the experiment with its artifact root on first use, then select it."""
    import mlflow

    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_root(tracking_uri))
    mlflow.set_experiment(EXPERIMENT)


@dataclass(frozen=True)
class Registration:
    """Where a run went and what the registry now says."""

    run_id: str
    model_name: str
    version: str
    promoted: bool
    alias: str


def _metrics(result: TrainResult) -> dict[str, float]:
    """Flat MLflow metrics: test estimates with intervals, validation, groups, gates."""
    out: dict[str, float] = {}
    for name, row in result.intervals.iterrows():
        out[f"test_{name}"] = row["estimate"]
        out[f"test_{name}_lower"] = row["lower"]
        out[f"test_{name}_upper"] = row["upper"]
    for family, metrics in result.validation.items():
        out.update({f"validation_{family}_{k}": v for k, v in metrics.items()})
    if result.label_gap is not None:
        for name, row in result.label_gap.iterrows():
            out[f"truth_{name}"] = row["truth"]
            out[f"selective_labels_gap_{name}"] = row["gap"]
    for attribute, table in result.groups.items():
        for group, row in table.iterrows():
            key = f"{attribute}.{group}".replace(" ", "_")
            out[f"group_auc.{key}"] = row["auc"]
            out[f"group_selection_rate.{key}"] = row["selection_rate"]
    for gate in result.gates:
        out[f"gate.{gate.gate}"] = gate.value
    for name in ("auc_as_recorded", "auc_if_no_delays", "cost"):
        if name in result.delay_cost:
            out[f"delays.{name}"] = result.delay_cost[name]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def log_and_register(
    result: TrainResult, *, tracking_uri: str, model_name: str, alias: str
) -> Registration:
    """Log the run (params, metrics, plots, card, gates), register it, promote if gates pass."""
    configure_mlflow(tracking_uri)
    import mlflow
    from mlflow import MlflowClient

    _use_experiment(tracking_uri)
    data, scorer, config = result.data, result.scorer, result.config
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        mlflow.log_params(
            {
                "outcome": config.outcome,
                "family": result.chosen,
                "seed": config.seed,
                "scorecard_bootstraps": config.scorecard_bootstraps,
                "challenger_bootstraps": config.challenger_bootstraps,
                "challenger_margin": config.challenger_margin,
                "validation_share": config.split.validation_share,
                "test_share": config.split.test_share,
                "n_signals": len(scorer.signals),
                "catalogue_version": scorer.catalogue_version,
                "data_fingerprint": data.fingerprint,
                "band_thresholds": json.dumps(list(scorer.bands.thresholds)),
            }
        )
        mlflow.set_tags(
            {
                "catalogue_version": scorer.catalogue_version,
                "data_fingerprint": data.fingerprint,
                "choice_reason": result.reason,
                "synthetic": "true",
            }
        )
        mlflow.log_metrics(_metrics(result))
        test_ids = data.part(TEST)
        y = data.label.loc[test_ids].to_numpy(dtype=np.int64)
        truth = None if data.truth is None else data.truth.loc[test_ids].to_numpy(dtype=np.int64)
        X = scorer.matrix(data.features.loc[test_ids])
        sample = np.random.default_rng(0).permutation(len(X))[:2000]
        _, contributions = scorer.model.contributions(X[sample])
        plots = [
            reliability_plot(y, result.test_probability, out / "reliability.png", truth=truth),
            roc_plot(y, result.test_probability, out / "roc.png"),
            effects_plot(scorer.signals, X[sample], contributions, out / "signal_effects.png"),
        ]
        for path in plots:
            mlflow.log_artifact(str(path), artifact_path="plots")
        gates = [g.to_dict() for g in result.gates]
        mlflow.log_dict({"passed": result.promoted, "gates": gates}, "gates.json")

        client = MlflowClient()
        scorer_path = out / "scorer.joblib"
        joblib.dump(scorer, scorer_path)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"scorer": str(scorer_path)},
            registered_model_name=model_name,
            input_example=data.features.loc[test_ids].head(3),
        )
        version = str(info.registered_model_version)
        scorer.version = f"{model_name}/{version}"
        mlflow.log_text(card_markdown(result), "model_card.md")
        mlflow.log_text(card_json(result), "model_card.json")
        client.set_model_version_tag(
            model_name, version, "gates_passed", str(result.promoted).lower()
        )
        if result.promoted:
            client.set_registered_model_alias(model_name, alias, version)
        return Registration(run.info.run_id, model_name, version, result.promoted, alias)


def load_champion_scorer(*, tracking_uri: str, model_name: str, alias: str) -> Scorer:
    """The ``Scorer`` behind ``models:/<name>@<alias>``."""
    configure_mlflow(tracking_uri)
    import mlflow
    from mlflow import MlflowClient

    version = MlflowClient().get_model_version_by_alias(model_name, alias).version
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    scorer: Scorer = model.unwrap_python_model().scorer  # the pickled Scorer of pyfunc_model
    scorer.version = f"{model_name}/{version}"
    return scorer


_NO_SUCH_ALIAS = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
"""MLflow's error codes for an unknown model and for an alias no version carries."""


def champion_version(*, tracking_uri: str, model_name: str, alias: str) -> str | None:
    """``<name>/<version>`` of the model ``models:/<name>@<alias>`` names; None if none."""
    configure_mlflow(tracking_uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = MlflowClient().get_model_version_by_alias(model_name, alias).version
    except MlflowException as exc:
        if exc.error_code in _NO_SUCH_ALIAS:
            return None
        raise
    return f"{model_name}/{version}"
