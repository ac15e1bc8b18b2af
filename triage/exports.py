"""Files people open in spreadsheets: every CSV the project writes goes through ``write_csv``.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets; a referral id or a name from an extract could
then run a formula (``=HYPERLINK(...)`` leaking the sheet, or worse) on the machine of whoever
opens the export. Following the OWASP rule, such text cells get a single quote in front, which
spreadsheets show as text and do not evaluate. Numeric columns stay numbers, so a negative
contribution is still ``-0.12``; every text cell is quoted.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
"""OWASP's list, with the full-width forms some spreadsheets also take as formula signs."""


def neutralise_cell(value: Any) -> Any:
    """A text cell made inert for spreadsheets; anything that is not text is returned as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell and column name neutralised; numbers untouched."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if (
            pd.api.types.is_numeric_dtype(series)
            or pd.api.types.is_bool_dtype(series)
            or pd.api.types.is_datetime64_any_dtype(series)
        ):
            continue
        out[column] = series.astype(object).map(neutralise_cell)
    out.columns = [neutralise_cell(str(name)) for name in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (without its index) as a CSV that is safe to open in a spreadsheet."""
    path = Path(path)
    neutralise_frame(frame).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return path
