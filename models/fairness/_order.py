"""One canonical row order for the audit, so that its figures do not depend on row order.

Sums of floating-point scores round differently in another order (by an ulp or so), and the
audit's inputs arrive in whatever order an engine produced them: from memory in extract
order, from Spark as counted cells expanded back into rows. Sorting by every input the audit
reads makes equal multisets of rows equal arrays, so every engine's document is the same to
the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _sort_key(values: pd.Series | np.ndarray) -> np.ndarray:
    """Codes that order one column: floats as they are, anything else by its text."""
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(float)
    # Missing values become their own text ("None", "nan"): consistent, which is all that counts.
    codes, _ = pd.factorize(pd.Series(array, dtype=object).astype(str), sort=True)
    return np.asarray(codes, dtype=np.int64)


def canonical_order(columns: Sequence[pd.Series | np.ndarray | None]) -> np.ndarray:
    """Row positions sorted by every given column (the first the primary key); None skipped."""
    keys = [_sort_key(c) for c in columns if c is not None]
    # lexsort sorts by its last key first.
    return np.lexsort(keys[::-1])
