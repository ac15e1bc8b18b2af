"""Serve the real app under uvicorn with a small pickled model, for the reliability checks.

``triage serve`` loads the champion from MLflow; registering one costs a training run, so the
reliability tests fit a tiny scorer in seconds, pickle it, and start uvicorn on this factory::

    python scripts/reliability_server.py --port 8123 --workers 2 --scorer /tmp/scorer.pkl

The database comes from ``TRIAGE_DATABASE_URL`` as for ``triage serve`` (already migrated).
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
from pathlib import Path

from fastapi import FastAPI

from models.scorer import Scorer

SCORER_ENV = "TRIAGE_RELIABILITY_SCORER"


def tiny_scorer(directory: Path | None = None) -> Scorer:
    """A scorecard fitted on a small synthetic world (about a second)."""
    from models.dataset import load_training_data
    from models.train import fit_scorer
    from triage.synth import WorldParams, generate_world
    from triage.synth.extract import write_extract

    directory = directory or Path(tempfile.mkdtemp(prefix="tiny-world-"))
    write_extract(generate_world(WorldParams(n_referrals=1_000, seed=11)), directory)
    return fit_scorer(load_training_data(directory), n_boot=2, version="reliability-model/1")


def create() -> FastAPI:
    """The service app, scoring with the pickled scorer named by ``TRIAGE_RELIABILITY_SCORER``."""
    from api.app import create_app

    path = os.environ.get(SCORER_ENV)
    if not path:
        return create_app(scorer_loader=lambda: None)

    def load() -> Scorer:
        with open(path, "rb") as handle:
            return pickle.load(handle)

    return create_app(scorer_loader=load)


def main() -> None:
    """Run uvicorn on ``create`` (the database must already be migrated)."""
    from serving.supervisor import ServerOptions, serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scorer", type=Path, help="A pickled models.scorer.Scorer.")
    args = parser.parse_args()
    if args.scorer is not None:
        os.environ[SCORER_ENV] = str(args.scorer.resolve())
    options = ServerOptions(
        "reliability_server:create",
        host=args.host,
        port=args.port,
        app_dir=str(Path(__file__).resolve().parent),
        uvicorn_config={"log_level": "warning"},
        followers_env={"TRIAGE_SCORE_BACKLOG": "false"},  # as triage serve
    )
    serve(options, workers=args.workers)


if __name__ == "__main__":
    main()
