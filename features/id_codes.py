"""Integer codes for ID columns: parsed from numbered IDs when they have that shape, else hashed.

Hashing millions of high-cardinality strings dominated the batch build. IDs of the shape
``PREFIX + fixed-width digits`` (``C-0001234``, the usual form of case-system keys) map to exact
integers without hashing, so without collisions; a column may mix a few such shapes (children's
``C-0001234`` beside adults' ``PER-00001234``), each shape numbered after the previous one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

DENSE_ENOUGH = 1 << 24
"""Codes below this are used as they are; larger ones are renumbered densely."""
PARSE_BLOCK = 1 << 20
"""IDs parsed per block: a block's digits stay in cache (three times faster at 10M IDs)."""
MAX_SHAPES = 4
"""More ID shapes than this in one column are hashed instead."""
MAX_DIGITS = 15


def arrow_array(column: pd.Series) -> pa.Array:
    """A column as one Arrow array (zero-copy for Arrow-backed strings)."""
    arr = pa.array(column, from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def arrow_chunks(column: pd.Series) -> list[pa.Array]:
    """A column's Arrow chunks as strings, without joining them (a join copies every byte)."""
    arr = pa.array(column, from_pandas=True)
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    return [chunk.cast(pa.string()) for chunk in chunks] or [pa.array([], pa.string())]


def codes_of(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a dictionary-encoded array; nulls become -1."""
    codes: np.ndarray = pc.fill_null(arr, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes


def _offsets(arr: pa.Array) -> np.ndarray:
    """A string array's value offsets (one more than its length)."""
    return np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset :][: len(arr) + 1]


def _parse(chars: np.ndarray, digits_from: int) -> np.ndarray | None:
    """The numbers after ``digits_from`` in a (rows, width) byte matrix, None if not digits."""
    digits = chars[:, digits_from:] - np.uint8(48)  # bytes below "0" wrap above 9
    if (digits > 9).any():
        return None
    number = np.zeros(len(chars), dtype=np.int64)
    for k in range(digits.shape[1]):
        number *= 10
        number += digits[:, k]
    return number


def numbered_ids(arr: pa.Array) -> tuple[list[bytes], np.ndarray, np.ndarray] | None:
    """Each ID's shape (an index into the shapes, -1 for null) and number, or None.

    A shape is a prefix and a width (``b"C-9"``); within one width every ID has the same
    prefix. None when any ID has another form, or there are more than ``MAX_SHAPES`` shapes.
    """
    arr = arr.cast(pa.string())
    n = len(arr)
    if n == arr.null_count:
        return [], np.full(n, -1, dtype=np.int8), np.full(n, -1, dtype=np.int64)
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False) if arr.null_count else None
    offsets = _offsets(arr)
    lengths = np.diff(offsets)
    widths = np.flatnonzero(np.bincount(lengths if valid is None else lengths[valid]))
    if widths.size > MAX_SHAPES or widths[0] == 0:
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    shapes: list[bytes] = []
    shape = np.full(n, -1, dtype=np.int8)
    numbers = np.full(n, -1, dtype=np.int64)
    # One width and no bytes under the nulls: the IDs' bytes are one (rows, width) matrix.
    if widths.size == 1 and (valid is None or not lengths[~valid].any()):
        width = int(widths[0])
        matrix = data[offsets[0] : offsets[-1]].reshape(-1, width)
        parsed = _parse_shape(matrix[0], len(matrix), lambda lo, hi: matrix[lo:hi])
        if parsed is None:
            return None
        prefix, values = parsed
        if valid is None:
            numbers, shape[:] = values, 0
        else:
            numbers[valid], shape[valid] = values, 0
        return [prefix], shape, numbers
    for width in (int(w) for w in widths):
        mine = lengths == width if valid is None else (lengths == width) & valid
        rows = np.flatnonzero(mine)
        starts = offsets[rows]
        parsed = _parse_shape(
            data[starts[0] : starts[0] + width], rows.size, partial(_gathered, data, starts, width)
        )
        if parsed is None:
            return None
        prefix, values = parsed
        numbers[rows], shape[rows] = values, len(shapes)
        shapes.append(prefix)
    return shapes, shape, numbers


def _gathered(data: np.ndarray, starts: np.ndarray, width: int, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of IDs of one width that are not contiguous, as a (rows, width) matrix."""
    gathered: np.ndarray = data[starts[lo:hi, None] + np.arange(width)]
    return gathered


def _parse_shape(
    head: np.ndarray, total: int, block: Callable[[int, int], np.ndarray]
) -> tuple[bytes, np.ndarray] | None:
    """One shape's key and the numbers of its ``total`` IDs, read ``block`` by block; the
    shape is the first ID's (``head``, its bytes). None unless every ID has it."""
    width = len(head)
    is_digit = (head >= 48) & (head <= 57)
    digits_from = int(np.argmax(is_digit)) if is_digit.any() else width
    if digits_from == width or not is_digit[digits_from:].all():
        return None
    if width - digits_from > MAX_DIGITS:
        return None
    prefix = head[:digits_from]
    values = np.empty(total, dtype=np.int64)
    for lo in range(0, total, PARSE_BLOCK):
        chars = block(lo, lo + PARSE_BLOCK)
        if not (chars[:, :digits_from] == prefix).all():
            return None
        number = _parse(chars, digits_from)
        if number is None:
            return None
        values[lo : lo + len(chars)] = number
    return bytes(prefix) + str(width).encode(), values


def _numbered_together(arrays: list[pa.Array]) -> list[np.ndarray] | None:
    """Shared codes from numbered IDs: each shape's numbers after the shapes seen before it."""
    parsed = [numbered_ids(a) for a in arrays]
    if any(p is None for p in parsed):
        return None
    largest: dict[bytes, int] = {}
    for shapes, shape, numbers in (p for p in parsed if p is not None):
        for index, key in enumerate(shapes):
            top = int(numbers.max() if len(shapes) == 1 else numbers[shape == index].max())
            largest[key] = max(largest.get(key, -1), top)
    if len(largest) > MAX_SHAPES:
        return None
    offset_of: dict[bytes, int] = {}
    start = 0
    for key, top in largest.items():  # first seen first: its numbers are its codes
        offset_of[key] = start
        start += top + 1
    out = []
    for shapes, shape, numbers in (p for p in parsed if p is not None):
        shift = np.array([offset_of[key] for key in shapes] + [0], dtype=np.int64)
        codes = numbers
        if shift.any():
            codes = numbers + shift[shape]
            codes[shape < 0] = -1
        out.append(codes)
    if start < DENSE_ENOUGH:
        return out
    # Large, sparse case numbers: renumber densely so a packed key cannot overflow.
    joined = np.concatenate(out)
    present = joined >= 0
    dense = np.full(joined.size, -1, dtype=np.int64)
    dense[present] = np.unique(joined[present], return_inverse=True)[1]
    bounds = np.cumsum([0, *(v.size for v in out)])
    return [dense[lo:hi] for lo, hi in itertools.pairwise(bounds)]


def encode_together(*columns: pd.Series) -> list[np.ndarray]:
    """Shared integer codes for the values of several columns (nulls are -1)."""
    chunked = [arrow_chunks(c) for c in columns]
    arrays = [chunk for chunks in chunked for chunk in chunks]
    codes = _numbered_together(arrays)
    if codes is None:
        codes = _hashed_together(arrays)
    bounds = np.cumsum([0, *(len(chunks) for chunks in chunked)])
    return [
        codes[lo] if hi - lo == 1 else np.concatenate(codes[lo:hi])
        for lo, hi in itertools.pairwise(bounds)
    ]


def _hashed_together(arrays: list[pa.Array]) -> list[np.ndarray]:
    """Shared codes by hashing: for IDs of any form."""
    codes = codes_of(pa.concat_arrays(arrays).dictionary_encode().indices)
    bounds = np.cumsum([0, *(len(a) for a in arrays)])
    return [codes[lo:hi] for lo, hi in itertools.pairwise(bounds)]
