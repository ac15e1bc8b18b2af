"""MLflow "model from code": the registered pyfunc wraps the pickled ``Scorer``."""

from __future__ import annotations

from typing import Any

import joblib
import mlflow
import pandas as pd

# The defining module: mlflow.pyfunc re-exports these without declaring them public.
from mlflow.pyfunc.model import PythonModel, PythonModelContext


class TriagePyfunc(PythonModel):
    """Loads the scorer artifact; ``predict`` returns probability, range and band per row."""

    def load_context(self, context: PythonModelContext) -> None:
        """Unpickle the scorer logged beside this file."""
        self.scorer = joblib.load(context.artifacts["scorer"])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Scores for a table of signals (columns named as in the catalogue)."""
        batch = self.scorer.score(model_input)
        return pd.DataFrame(
            {
                "probability": batch.probability,
                "probability_low": batch.low,
                "probability_high": batch.high,
                "band": batch.band,
            },
            index=model_input.index,
        )


mlflow.models.set_model(TriagePyfunc())
