"""Statistical disclosure control of a published audit: primary and secondary suppression.

The rule follows the Government Statistical Service's guidance on disclosure control of
tables from administrative sources (GSS/GSR, 2014) and ONS practice for published tables:

- **Primary suppression**: a group with fewer than ``min_size`` referrals is withheld whole;
  a cell (one group's counts behind one block of figures) is withheld when any of its counts
  is from 1 to ``min_count - 1``, the complement included (7 of 60 selected and 53 not are
  both counts). Zeros are shown.
- **Secondary (complementary) suppression**: every published count is a sum over the same
  atoms (combinations of attribute values), so published cells are tied by linear relations:
  groups of a grouping sum to the overall total, an intersection's groups sum to each
  margin, reliability bins sum to their group. Cells are withheld until no withheld cell is
  a linear combination of shown ones (exact check by projection onto the shown cells' span)
  and no line (a total and its parts) reveals a withheld sum from 1 to ``min_count - 1``.
- Every figure derived from a withheld cell goes with it: rates, intervals, ratios to the
  overall or reference group, comparisons in which it is either side, ranking shares,
  label gaps, reliability bins, and ECE when one of its bins is withheld.

Blocks of figures and the counts behind them (per group; ``ℓ`` a label, ``c`` a capacity):
``n`` (size, mean score, ranking shares and exposure), ``flagged@c`` (selection and share of
the top c%), ``positives@ℓ`` (base rate, calibration, AUC, Brier, ECE, share of outcomes),
``confusion@ℓ@c`` (precision, FPR, FNR, FDR, FOR), ``bin_n@b`` and ``bin_pos@ℓ@b``
(reliability), and ``human`` (every human-decision rate of the group together).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.fairness._groups import OVERALL, OVERALL_GROUP, SEPARATOR

Key = tuple[str, str]
"""A group: (grouping, group)."""

RULE = {
    "source": (
        "Government Statistical Service, 'GSS/GSR disclosure control guidance for tables "
        "produced from administrative sources' (2014); ONS disclosure control practice for "
        "published tables"
    ),
    "primary": (
        "groups under min_size referrals are withheld; a cell is withheld when any count "
        "behind it (or its complement) is from 1 to min_count - 1; zeros are shown"
    ),
    "secondary": (
        "further cells are withheld until no withheld cell is a linear combination of shown "
        "cells (groups, intersections, totals, reliability bins) and no total minus its shown "
        "parts is from 1 to min_count - 1"
    ),
    "consequential": (
        "every figure derived from a withheld cell is withheld: rates, intervals, ratios, "
        "comparisons on either side, ranking shares, label gaps, reliability bins, ECE"
    ),
}

_CAPACITY_RATES = ("selection_rate", "precision", "fpr", "fnr", "fdr", "for")
_CONFUSION_RATES = ("precision", "fpr", "fnr", "fdr", "for")
_POSITIVE_METRICS = (
    "base_rate",
    "calibration_gap",
    "auc",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
)


def metric_block(metric: str, label: str) -> str:
    """The block of counts a metric (of one label) is computed from."""
    base, _, capacity = metric.partition("_at_")
    if metric == "mean_score":
        return "n"
    if base == "selection_rate":
        return f"flagged@{capacity}"
    if base in _CONFUSION_RATES:
        return f"confusion@{label}@{capacity}"
    return f"positives@{label}"


@dataclass
class _Cells:
    """One block's cells, their counts, incidence over atoms and the lines that tie them."""

    keys: list[Any]
    rows: np.ndarray
    values: np.ndarray
    primary: np.ndarray
    selectable: np.ndarray
    lines: list[tuple[int, list[int]]] = field(default_factory=list)
    last: np.ndarray | None = None
    """Cells chosen as complements only when nothing else will do (reference groups)."""


def _sensitive(values: np.ndarray, min_count: int) -> np.ndarray:
    """Cells with any count from 1 to min_count - 1 (NaN counts are not judged here)."""
    with np.errstate(invalid="ignore"):
        small = (values > 0) & (values < min_count)
    return np.asarray(small.any(axis=1))


def _span_basis(rows: np.ndarray) -> np.ndarray:
    """Orthonormal basis (as rows) of the span of the given rows, from the smaller Gram matrix."""
    m, d = rows.shape
    if m == 0:
        return np.zeros((0, d))
    if d <= m:
        eigenvalues, vectors = np.linalg.eigh(rows.T @ rows)
        keep = eigenvalues > 1e-10 * max(1.0, float(eigenvalues[-1]))
        basis: np.ndarray = vectors[:, keep].T
        return basis
    eigenvalues, vectors = np.linalg.eigh(rows @ rows.T)
    keep = eigenvalues > 1e-10 * max(1.0, float(eigenvalues[-1]))
    basis = (vectors[:, keep].T @ rows) / np.sqrt(eigenvalues[keep])[:, None]
    return basis


def compress(rows: np.ndarray) -> np.ndarray:
    """Rows with the same linear relations in as few columns as their rank (U·S of the SVD).

    Computed from the Gram matrix, whose size is the number of rows, not of columns.
    """
    eigenvalues, vectors = np.linalg.eigh(rows @ rows.T)
    keep = eigenvalues > 1e-9 * max(1.0, float(eigenvalues[-1]))
    compressed: np.ndarray = vectors[:, keep] * np.sqrt(eigenvalues[keep])
    return compressed


def determinable(rows: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Withheld cells whose counts are exact linear combinations of the shown cells' counts."""
    basis = _span_basis(rows[~hidden])
    target = rows[hidden]
    residual = target - (target @ basis.T) @ basis
    norms = np.linalg.norm(target, axis=1)
    found = np.zeros(hidden.size, dtype=bool)
    found[np.flatnonzero(hidden)] = np.linalg.norm(residual, axis=1) <= 1e-7 * np.maximum(norms, 1)
    return found


def protect(cells: _Cells, min_count: int) -> np.ndarray:
    """Primary and secondary suppression of one block: which cells to withhold."""
    hidden = cells.primary.copy()
    values = np.nan_to_num(cells.values, nan=np.inf)
    order_key = values[:, 0]
    last = np.zeros(hidden.size, dtype=bool) if cells.last is None else cells.last

    def pick(candidates: Sequence[int]) -> int | None:
        shown = [i for i in candidates if not hidden[i] and cells.selectable[i]]
        return min(shown, key=lambda i: (bool(last[i]), order_key[i], i)) if shown else None

    for _ in range(10 * len(cells.keys) + 10):
        changed = False
        for parent, members in cells.lines:
            line = [parent, *members]
            count = sum(bool(hidden[i]) for i in line)
            if count == 0:
                continue
            need = count == 1
            if not need and not hidden[parent]:
                shown = [m for m in members if not hidden[m]]
                revealed = cells.values[parent] - cells.values[shown].sum(axis=0)
                need = bool(np.any((revealed > 0.5) & (revealed < min_count - 0.5)))
            if need:
                choice = pick(members)
                if choice is None:
                    choice = pick([parent])
                if choice is not None:
                    hidden[choice] = True
                    changed = True
        if changed:
            continue
        exposed = np.flatnonzero(determinable(cells.rows, hidden))
        if exposed.size == 0:
            return hidden
        # One complement per exposed cell, except where an earlier one shares its line: one
        # pass per projection keeps the number of decompositions small.
        touched: set[int] = set()
        for cell in exposed:
            lines = [(p, *m) for p, m in cells.lines if cell in (p, *m)]
            if any(touched & set(line) for line in lines):
                continue
            choice = pick([i for line in lines for i in line])
            if choice is None:
                choice = pick(range(len(cells.keys)))
            if choice is None:
                # Nothing left to withhold beside it (the cell is as public as the overall
                # total): fail closed, every cell of the block withheld.
                return np.asarray(hidden | cells.selectable, dtype=bool)
            hidden[choice] = True
            touched |= {i for line in lines for i in line}
    return np.asarray(hidden | cells.selectable, dtype=bool)  # pragma: no cover  (fails closed)


@dataclass
class Structure:
    """The groups of a document and their incidence over atoms (compressed), with lines."""

    keys: list[Key]
    index: dict[Key, int]
    rows: np.ndarray
    lines: list[tuple[int, list[int]]]
    singles: list[str]

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Structure:
        """Read the internal document's ``structure`` (groupings, labels and atoms)."""
        structure = document["structure"]
        names: list[str] = structure["groupings"]
        atoms = np.asarray(structure["atoms"], dtype=np.int64).reshape(-1, len(names))
        keys: list[Key] = []
        blocks = []
        for j, (name, labels) in enumerate(zip(names, structure["labels"], strict=True)):
            keys += [(name, str(label)) for label in labels]
            block = np.zeros((len(labels), atoms.shape[0]))
            block[atoms[:, j], np.arange(atoms.shape[0])] = 1.0
            blocks.append(block)
        incidence = np.concatenate(blocks)
        rows = compress(incidence)
        index = {k: i for i, k in enumerate(keys)}
        lines: list[tuple[int, list[int]]] = []
        attributes = {n: tuple(a) for n, a in zip(names, structure["attributes"], strict=True)}
        total = index[(OVERALL, OVERALL_GROUP)]
        for name in names:
            if name == OVERALL:
                continue
            lines.append((total, [index[k] for k in keys if k[0] == name]))
            parts = attributes[name]
            for drop in range(len(parts)) if len(parts) > 1 else ():
                margin = tuple(a for i, a in enumerate(parts) if i != drop)
                margin_name = SEPARATOR.join(margin)
                if margin_name not in attributes:
                    continue
                children: dict[str, list[int]] = {}
                for k in keys:
                    if k[0] == name:
                        labels = k[1].split(SEPARATOR)
                        rest = SEPARATOR.join(x for i, x in enumerate(labels) if i != drop)
                        children.setdefault(rest, []).append(index[k])
                for label, members in children.items():
                    lines.append((index[(margin_name, label)], members))
        singles = [n for n in names if len(attributes[n]) == 1]
        return cls(keys, index, rows, lines, singles)


@dataclass
class Withheld:
    """What disclosure control withheld: per block, the groups (or group × bin) withheld."""

    groups: set[Key]
    blocks: dict[str, set[Key]]
    bins: dict[str, set[tuple[str, str, int]]]
    ece: set[tuple[str, str, str]]
    counts: dict[str, int]
    quarters: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    """Per block, the (grouping, group, quarter) cells withheld from the quarter view."""

    def block(self, name: str, key: Key) -> bool:
        """Whether a group's block is withheld (a withheld group withholds every block)."""
        return key in self.groups or key in self.blocks.get(name, set())


def _group_block(
    structure: Structure,
    values: Mapping[Key, Sequence[float]],
    width: int,
    min_count: int,
    also: set[Key],
    last: set[Key] | None = None,
) -> set[Key]:
    """Protect one block of group counts; ``also`` is withheld from the start."""
    matrix = np.full((len(structure.keys), width), np.nan)
    for key, v in values.items():
        if key in structure.index:
            matrix[structure.index[key]] = v
    primary = _sensitive(matrix, min_count) | np.array([k in also for k in structure.keys])
    # The overall size is the audit's n, published in its metadata; other totals may hide.
    selectable = np.array([k[0] != OVERALL or width > 1 for k in structure.keys])
    cells = _Cells(structure.keys, structure.rows, matrix, primary, selectable, structure.lines)
    cells.last = np.array([k in (last or set()) for k in structure.keys])
    hidden = protect(cells, min_count)
    return {k for k, h in zip(structure.keys, hidden, strict=True) if h}


def _bin_block(
    structure: Structure,
    totals: Mapping[Key, Sequence[float]],
    totals_hidden: set[Key],
    bins: Mapping[tuple[str, str, int], Sequence[float]],
    n_bins: int,
    width: int,
    min_count: int,
    also: set[tuple[str, str, int]],
) -> set[tuple[str, str, int]]:
    """Protect the reliability bins of single groupings with their group totals held fixed.

    First on the published groups alone (small and fast), then checked, and extended if need
    be, with every group's total in the system (intersections tie the totals together).
    """
    published = [k for k in structure.keys if k[0] in structure.singles or k[0] == OVERALL]
    rows = compress(structure.rows[[structure.index[k] for k in published]])
    hidden = _bins_pass(
        published, rows, published, totals, totals_hidden, bins, n_bins, width, min_count, also
    )
    hidden = _bins_pass(
        structure.keys,
        structure.rows,
        published,
        totals,
        totals_hidden,
        bins,
        n_bins,
        width,
        min_count,
        also | hidden,
    )
    return hidden


def _bins_pass(
    group_keys: Sequence[Key],
    group_rows: np.ndarray,
    published: Sequence[Key],
    totals: Mapping[Key, Sequence[float]],
    totals_hidden: set[Key],
    bins: Mapping[tuple[str, str, int], Sequence[float]],
    n_bins: int,
    width: int,
    min_count: int,
    also: set[tuple[str, str, int]],
) -> set[tuple[str, str, int]]:
    """One protection of the bins of ``published`` groups, with ``group_keys`` as fixed totals."""
    position = {k: i for i, k in enumerate(group_keys)}
    keys: list[Any] = list(group_keys)
    keys += [(g, grp, b) for g, grp in published for b in range(n_bins)]
    dims = group_rows.shape[1]
    rows = np.zeros((len(keys), dims * n_bins))
    rows[: len(group_keys)] = np.tile(group_rows, n_bins)
    values = np.full((len(keys), width), np.nan)
    for i, key in enumerate(group_keys):
        if key in totals:
            values[i] = totals[key]
    index = {k: i for i, k in enumerate(keys)}
    lines: list[tuple[int, list[int]]] = []
    for grp_key in published:
        members = [index[(*grp_key, b)] for b in range(n_bins)]
        lines.append((position[grp_key], members))
    for i, key in enumerate(keys[len(group_keys) :], start=len(group_keys)):
        grp_key, b = (key[0], key[1]), key[2]
        rows[i, b * dims : (b + 1) * dims] = group_rows[position[grp_key]]
        values[i] = bins.get(key, [0.0] * width)
    singles = sorted({k[0] for k in published if k[0] != OVERALL})
    for b in range(n_bins):
        total = index[(OVERALL, OVERALL_GROUP, b)]
        for name in singles:
            lines.append((total, [index[(*k, b)] for k in published if k[0] == name]))
    primary = _sensitive(values, min_count)
    primary[: len(group_keys)] = [k in totals_hidden for k in group_keys]
    primary |= np.array([k in also for k in keys])
    # A bin with no referrals has no row: a reader knows it is zero, so it cannot hide.
    selectable = np.array([len(k) == 3 and k in bins for k in keys])
    cells = _Cells(keys, rows, values, primary, selectable, lines)
    hidden = protect(cells, min_count)
    return {k for k, h in zip(keys, hidden, strict=True) if h and len(k) == 3}


def _rate_counts(
    document: Mapping[str, Any],
) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """(numerator, denominator) of every rate row of ``metrics``, by group, label and metric."""
    out = {}
    for row in document.get("metrics") or []:
        if row.get("numerator") is not None and row.get("denominator") is not None:
            key = (row["grouping"], row["group"], row["label"], row["metric"])
            out[key] = (float(row["numerator"]), float(row["denominator"]))
    return out


def withhold(document: Mapping[str, Any], *, min_count: int) -> Withheld:
    """Decide every withheld cell of an internal audit document."""
    structure = Structure.from_document(document)
    sizes: dict[Key, list[float]] = {}
    for row in [*(document.get("groups") or []), *(document.get("suppressed") or [])]:
        if row.get("n") is not None:
            sizes[(row["grouping"], row["group"])] = [float(row["n"])]
    sizes[(OVERALL, OVERALL_GROUP)] = [float(document["meta"]["n"])]
    shown = {(r["grouping"], r["group"]) for r in document.get("groups") or []}
    small = {k for k in structure.keys if k not in shown}
    # Groups under min_size are withheld whole; their size is a count like any other.
    # Groups under min_size are withheld whole, and so is any sum of withheld groups that a
    # total would reveal below min_size: sizes are protected at min_size, not min_count.
    min_size = max(int(document["config"].get("min_size") or 0), min_count)
    references = {(g, r["group"]) for g, r in (document.get("references") or {}).items()}
    groups = _group_block(structure, sizes, 1, min_size, small, references)
    counts = {"primary_groups": len(small), "secondary_groups": len(groups - small)}
    rates = _rate_counts(document)
    labels: list[str] = list(document["meta"].get("labels") or ["observed"])
    capacities = [str(k) for k in document.get("thresholds") or {}]
    blocks: dict[str, set[Key]] = {}

    def block(name: str, make: Callable[[Key], list[float] | None], also: set[Key]) -> None:
        values = {}
        for key in structure.keys:
            v = make(key)
            if v is not None:
                values[key] = v
        blocks[name] = _group_block(structure, values, 4, min_count, groups | also, references)

    first = labels[0]
    for c in capacities:

        def flagged(key: Key, c: str = c) -> list[float] | None:
            pair = rates.get((*key, first, f"selection_rate_at_{c}"))
            return None if pair is None else [pair[0], pair[1] - pair[0], np.nan, np.nan]

        block(f"flagged@{c}", flagged, set())
    for label in labels:

        def positives(key: Key, label: str = label) -> list[float] | None:
            pair = rates.get((*key, label, "base_rate"))
            return None if pair is None else [pair[0], pair[1] - pair[0], np.nan, np.nan]

        block(f"positives@{label}", positives, set())
        for c in capacities:

            def confusion(key: Key, label: str = label, c: str = c) -> list[float] | None:
                tp = rates.get((*key, label, f"precision_at_{c}"))
                fp = rates.get((*key, label, f"fpr_at_{c}"))
                fn = rates.get((*key, label, f"fnr_at_{c}"))
                size = sizes.get(key)
                if tp is None or fp is None or fn is None or size is None:
                    return None
                tn = size[0] - tp[0] - fp[0] - fn[0]
                return [tp[0], fp[0], fn[0], tn]

            block(
                f"confusion@{label}@{c}",
                confusion,
                blocks[f"positives@{label}"] | blocks[f"flagged@{c}"],
            )
    human: dict[Key, list[float]] = {}
    for row in document.get("human") or []:
        if row.get("numerator") is None or row.get("denominator") is None:
            continue
        parts = human.setdefault((row["grouping"], row["group"]), [])
        parts += [float(row["numerator"]), float(row["denominator"] - row["numerator"])]
    if human:
        width = max(len(v) for v in human.values())
        padded = {k: v + [np.nan] * (width - len(v)) for k, v in human.items()}
        blocks["human"] = _group_block(structure, padded, width, min_count, groups, references)

    n_bins = int(document["config"].get("n_bins") or 10)
    bin_n: dict[tuple[str, str, int], list[float]] = {}
    bin_pos: dict[str, dict[tuple[str, str, int], list[float]]] = {lab: {} for lab in labels}
    for row in document.get("reliability") or []:
        b = min(round(row["bin_lower"] * n_bins), n_bins - 1)
        key = (row["grouping"], row["group"], b)
        n = float(row["n"])
        bin_n[key] = [n]
        if row.get("observed_rate") is not None:
            pos = round(row["observed_rate"] * n)
            bin_pos[row["label"]][key] = [pos, n - pos]
    withheld_bins: dict[str, set[tuple[str, str, int]]] = {}
    # A withheld group has no bins in the document: they are unknown, not zero.
    whole = {(*key, b) for key in groups for b in range(n_bins)}
    withheld_bins["n"] = _bin_block(structure, sizes, groups, bin_n, n_bins, 1, min_count, whole)
    ece: set[tuple[str, str, str]] = set()
    for label in labels:
        totals: dict[Key, list[float]] = {}
        for group_key in structure.keys:
            pair = rates.get((*group_key, label, "base_rate"))
            if pair is not None:
                totals[group_key] = [pair[0], pair[1] - pair[0]]
        hidden = _bin_block(
            structure,
            totals,
            blocks[f"positives@{label}"] | groups,
            bin_pos[label],
            n_bins,
            2,
            min_count,
            withheld_bins["n"],
        )
        withheld_bins[f"positives@{label}"] = hidden
        # ECE sums |score − outcome| over bins: with a bin's outcomes withheld it would solve
        # for them, so it goes with them.
        ece |= {(g, grp, label) for g, grp, _ in hidden}
    quarters = _quarters(document, structure, blocks, groups, sizes, rates, labels, min_count)
    counts["cells"] = sum(len(v) for v in blocks.values())
    counts["bins"] = sum(len(v) for v in withheld_bins.values())
    counts["quarter_cells"] = sum(len(v) for v in quarters.values())
    return Withheld(groups, blocks, withheld_bins, ece, counts, quarters)


def _quarters(
    document: Mapping[str, Any],
    structure: Structure,
    blocks: Mapping[str, set[Key]],
    groups: set[Key],
    sizes: Mapping[Key, list[float]],
    rates: Mapping[tuple[str, str, str, str], tuple[float, float]],
    labels: Sequence[str],
    min_count: int,
) -> dict[str, set[tuple[str, str, str]]]:
    """Protect the quarter view: quarters are to a group what reliability bins are."""
    rows = document.get("by_quarter") or []
    if not rows:
        return {}
    names = sorted({r["quarter"] for r in rows})
    at = {name: i for i, name in enumerate(names)}
    counts = {
        (r["grouping"], r["group"], r["label"], r["metric"], at[r["quarter"]]): (
            float(r["numerator"]),
            float(r["denominator"]),
        )
        for r in rows
        if r.get("numerator") is not None and r.get("denominator") is not None
    }

    def cells(make: Callable[[Key, int], list[float] | None]) -> dict[Any, list[float]]:
        out: dict[Any, list[float]] = {}
        for g, grp, lab, metric, b in counts:
            if lab == labels[0] and metric == "base_rate":
                v = make((g, grp), b)
                if v is not None:
                    out[(g, grp, b)] = v
        return out

    def whole(make: Callable[[Key], list[float] | None]) -> dict[Key, list[float]]:
        return {k: v for k in structure.keys if (v := make(k)) is not None}

    def pair(key: Key, label: str, metric: str, b: int | None) -> tuple[float, float] | None:
        if b is None:
            return rates.get((*key, label, metric))
        return counts.get((*key, label, metric, b))

    def expand(found: set[tuple[str, str, int]]) -> set[tuple[str, str, str]]:
        return {(g, grp, names[b]) for g, grp, b in found}

    q = len(names)
    whole_groups = {(*k, b) for k in groups for b in range(q)}
    out: dict[str, set[tuple[str, str, int]]] = {}
    out["n"] = _bin_block(
        structure,
        sizes,
        groups,
        cells(lambda k, b: [pair(k, labels[0], "base_rate", b)[1]]),  # type: ignore[index]
        q,
        1,
        min_count,
        whole_groups,
    )
    flagged_block = "flagged@10"

    def split(p: tuple[float, float] | None) -> list[float] | None:
        return None if p is None else [p[0], p[1] - p[0]]

    if flagged_block in blocks:
        out[flagged_block] = _bin_block(
            structure,
            whole(lambda k: split(pair(k, labels[0], "selection_rate_at_10", None))),
            blocks[flagged_block] | groups,
            cells(lambda k, b: split(pair(k, labels[0], "selection_rate_at_10", b))),
            q,
            2,
            min_count,
            out["n"],
        )
    for label in labels:
        name = f"positives@{label}"

        def positives(key: Key, b: int | None = None, label: str = label) -> list[float] | None:
            return split(pair(key, label, "base_rate", b))

        out[name] = _bin_block(
            structure,
            whole(positives),
            blocks[name] | groups,
            cells(positives),
            q,
            2,
            min_count,
            out["n"],
        )
        confusion = f"confusion@{label}@10"
        if confusion not in blocks:
            continue

        def matrix(key: Key, b: int | None = None, label: str = label) -> list[float] | None:
            tp = pair(key, label, "precision_at_10", b)
            fp = pair(key, label, "fpr_at_10", b)
            fn = pair(key, label, "fnr_at_10", b)
            size = pair(key, labels[0], "base_rate", b)
            if tp is None or fp is None or fn is None or size is None:
                return None
            return [tp[0], fp[0], fn[0], size[1] - tp[0] - fp[0] - fn[0]]

        out[confusion] = _bin_block(
            structure,
            whole(matrix),
            blocks[confusion] | groups,
            cells(matrix),
            q,
            4,
            min_count,
            out["n"] | out[name] | out.get(flagged_block, set()),
        )
    return {k: expand(v) for k, v in out.items()}


def withhold_crossed(
    attributes: pd.DataFrame, margin: str, parts: np.ndarray, *, min_count: int
) -> dict[str, set[tuple[str, str]]]:
    """Primary and secondary suppression of tables crossing each attribute with ``margin``.

    One table per other column of ``attributes``; its cell (group, margin value) holds the
    column sums of ``parts`` over its rows (counts that make up the cell, its total first;
    every one is protected). The margin's totals and the grand total are taken as known to a
    reader; the groups' totals are not published. The tables are protected together, over
    atoms as the audit is, since groupings nest (a voice is a set of referrer types) and tie
    through the margin: no withheld cell of any table is a linear combination of the shown
    cells of all the tables and the known totals, and no known total minus its shown cells
    is from 1 to ``min_count - 1``. Returns each attribute's withheld cells.
    """
    columns = [c for c in attributes.columns if c != margin]
    if len(attributes) == 0:
        return {c: set() for c in columns}
    values = {c: attributes[c].astype(str).to_numpy() for c in [*columns, margin]}
    factorized = {c: np.unique(v, return_inverse=True) for c, v in values.items()}
    codes = np.stack([factorized[c][1] for c in [*columns, margin]], axis=1)
    atoms, atom_of = np.unique(codes, axis=0, return_inverse=True)
    atom_of = atom_of.reshape(-1)
    m = atoms[:, -1]
    names = [OVERALL, margin, *(f"{c}{SEPARATOR}{margin}" for c in columns)]
    labels: list[list[str]] = [[OVERALL_GROUP], [str(i) for i in range(len(factorized[margin][0]))]]
    atom_labels = [np.zeros(len(atoms), dtype=np.int64), m]
    for j, _ in enumerate(columns):
        pairs, inverse = np.unique(atoms[:, [j, -1]], axis=0, return_inverse=True)
        labels.append([f"{a}{SEPARATOR}{b}" for a, b in pairs])
        atom_labels.append(inverse.reshape(-1))
    structure = Structure.from_document(
        {
            "structure": {
                "groupings": names,
                "attributes": [[], [margin], *([c, margin] for c in columns)],
                "labels": labels,
                "atoms": np.stack(atom_labels, axis=1).tolist(),
            }
        }
    )
    sums = np.zeros((len(structure.keys), parts.shape[1]))
    row_parts = np.asarray(parts, dtype=float)
    for name, names_of, per_atom in zip(names, labels, atom_labels, strict=True):
        groups = per_atom[atom_of]
        at = [structure.index[(name, label)] for label in names_of]
        for k in range(row_parts.shape[1]):
            sums[at, k] = np.bincount(groups, row_parts[:, k], len(names_of))
    crossing = np.array([k[0] not in (OVERALL, margin) for k in structure.keys])
    # A grouping's only cell in a band is the band total, which is known: withheld when small
    # (for the form of it), it needs no complement, and none could hide it.
    alone = np.zeros(crossing.size, dtype=bool)
    for parent, members in structure.lines:
        if structure.keys[parent][0] == margin and len(members) == 1:
            alone[members[0]] = True
    sensitive = _sensitive(sums, min_count) & crossing
    cells = _Cells(
        structure.keys,
        structure.rows,
        sums,
        sensitive & ~alone,
        crossing & ~alone,
        structure.lines,
    )
    hidden = protect(cells, min_count) | (sensitive & alone)
    out: dict[str, set[tuple[str, str]]] = {c: set() for c in columns}
    for (name, label), h in zip(structure.keys, hidden, strict=True):
        if h and name not in (OVERALL, margin):
            column = columns[names.index(name) - 2]
            a, b = (int(x) for x in label.split(SEPARATOR))
            out[column].add((str(factorized[column][0][a]), str(factorized[margin][0][b])))
    return out
