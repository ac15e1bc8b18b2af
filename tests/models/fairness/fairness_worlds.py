"""A small synthetic scored world shared by the fairness tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

ATTRS = ("ethnicity", "sex", "deprivation_band")
INTERSECTIONS = (("ethnicity", "deprivation_band"), ("ethnicity", "sex"))


def _world(n: int = 6000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    attributes = pd.DataFrame(
        {
            "ethnicity": rng.choice(
                ["white", "asian", "black", "mixed"], n, p=[0.55, 0.2, 0.15, 0.1]
            ),
            "sex": rng.choice(["female", "male"], n),
            "deprivation_band": rng.choice(["1-2", "3-4", "5-6"], n),
        }
    )
    # Rounded scores create ties at the capacity cuts, which every metric must handle.
    p = np.round(rng.beta(2, 6, n) + 0.05 * (attributes["ethnicity"] == "black"), 3).clip(0, 1)
    y = (rng.random(n) < p).astype(float)
    return y, p, attributes
