"""Arrow building blocks for extract tables: labels from codes, identifiers, timestamps."""

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
    return pa.array(list(vocabulary), type=pa.string()).take(indices)


def prefixed(prefix: str | pa.Array, numbers: np.ndarray, width: int) -> pa.Array:
    """Identifiers such as ``EVT-00000042`` from integers."""
    digits = pc.utf8_lpad(
        pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0"
    )
    return pc.binary_join_element_wise(prefix, digits, "")


def timestamps(start: date, days: np.ndarray) -> pa.Array:
    """Days from the window start to UTC timestamps at microsecond resolution."""
    base = np.datetime64(start.isoformat(), "us").astype(np.int64)
    micros = base + np.round(days * 86_400e6).astype("int64")
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"))


def frame(columns: dict[str, object]) -> pd.DataFrame:
    """A DataFrame from Arrow arrays and numpy columns, strings kept Arrow-backed."""
    table = pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()})
    out: pd.DataFrame = table.to_pandas()
    return out


def timestamps_or_null(start: date, days: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Days from the window start as UTC timestamps; null where not ``valid``."""
    base = np.datetime64(start.isoformat(), "us").astype(np.int64)
    micros = base + np.round(np.where(valid, days, 0.0) * 86_400e6).astype("int64")
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=~valid)
