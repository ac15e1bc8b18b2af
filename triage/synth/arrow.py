"""Arrow building blocks for extract tables: labels from codes, identifiers, timestamps.

Strings are built as ``large_string``, the type pandas keeps its strings in, so turning a
ten-million-row table into a DataFrame copies no offsets.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def labels(vocabulary: tuple[str, ...] | list[str], codes: np.ndarray) -> pa.Array:
    """Strings for integer codes; negative codes become nulls."""
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    indices = pa.array(np.where(missing, 0, codes), mask=missing if missing.any() else None)
    return pa.array(list(vocabulary), type=pa.large_string()).take(indices)


def join(*parts: str | pa.Array) -> pa.Array:
    """Element-wise concatenation of string arrays and constant strings."""
    args = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, pa.scalar("", pa.large_string()))


def prefixed(prefix: str | pa.Array, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers such as ``EVT-00000042`` from integers."""
    digits = pc.utf8_lpad(
        pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.large_string()), width, "0"
    )
    return join(prefix, digits)


def timestamps(start: date, days: np.ndarray) -> pa.Array:
    """Days from the window start to UTC timestamps at microsecond resolution."""
    base = np.datetime64(start.isoformat(), "us").astype(np.int64)
    micros = base + np.round(days * 86_400e6).astype("int64")
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"))


def frame(columns: dict[str, object], *, release: bool = False) -> pd.DataFrame:
    """A DataFrame from Arrow arrays and numpy columns, strings kept Arrow-backed.

    With ``release`` the caller gives the columns up: each is dropped from ``columns`` once in
    the table and its Arrow memory freed as it is converted, which lowers the peak for a
    ten-million-row table.
    """
    table = pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()})
    if release:
        columns.clear()
        out: pd.DataFrame = table.to_pandas(self_destruct=True, split_blocks=True)
    else:
        out = table.to_pandas()
    return out


def timestamps_or_null(start: date, days: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Days from the window start as UTC timestamps; null where not ``valid``."""
    base = np.datetime64(start.isoformat(), "us").astype(np.int64)
    micros = base + np.round(np.where(valid, days, 0.0) * 86_400e6).astype("int64")
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=~valid)
