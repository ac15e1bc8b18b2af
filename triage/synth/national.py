"""A national world: regions generated one at a time and written as one extract.

One process cannot hold a national world: 4.5 M referrals and about 46 M agency events take
some 23 GB at the 5 GB a million referrals take while they are drawn. So the nation is drawn
as regions, each a complete world of its own seed (its children, households, adults and
agencies) of at most ``REGION_REFERRALS`` referrals, appended to the extract's Parquet files
as row groups and freed before the next is drawn: peak memory is one region's.

Regions share nothing: every identifier carries its region's two digits after its prefix
(``C-0001234`` in region 3 is ``C-030001234``; the prefixes stay, so the feature builder
still parses IDs rather than hashing them, with one shape per width of number) and NHS
numbers come from the region's own block (``regional_nhs_numbers``). Postcodes are drawn
from one pool in every region, so the same postcode can appear in two regions; linkage
across regions should block on region as well.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from triage.synth.extract import MANIFEST
from triage.synth.identity import regional_nhs_numbers
from triage.synth.layout import World
from triage.synth.params import WorldParams
from triage.synth.world import generate_world

REGION_REFERRALS = 1_000_000
"""Referrals in one region at most: a region takes about 5 GB while it is drawn."""

MAX_REGIONS = 10
"""Regions a national world may have (two digits in IDs; one NHS-number block each)."""

_FIRST_DIGIT = r"^(\D*)(\d)"
"""An ID's prefix and its first digit: the region's digits go between them."""


def region_count(n_referrals: int) -> int:
    """Regions the command line draws for ``n_referrals``: one per ``REGION_REFERRALS``."""
    return max(1, math.ceil(n_referrals / REGION_REFERRALS))


def region_params(params: WorldParams, regions: int) -> list[WorldParams]:
    """Each region's parameters: its share of the referrals and a seed of its own."""
    if not 1 <= regions <= MAX_REGIONS:
        raise ValueError(f"regions must be between 1 and {MAX_REGIONS}, not {regions}")
    if params.n_referrals < 100 * regions:
        raise ValueError(f"{params.n_referrals:,} referrals are too few for {regions} regions")
    share, extra = divmod(params.n_referrals, regions)
    seeds = np.random.SeedSequence([params.seed, regions]).generate_state(regions, np.uint32)
    return [
        replace(params, seed=int(seed), n_referrals=share + (r < extra))
        for r, seed in enumerate(seeds)
    ]


def regional_ids(table: pa.Table, region: int) -> pa.Table:
    """The table with the region's two digits in every ID (``*_id`` columns, schools)."""
    digits = f"{region:02d}"
    for i, field in enumerate(table.schema):
        is_text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        if is_text and (field.name.endswith("_id") or field.name == "school"):
            column = pc.replace_substring_regex(
                table.column(i), pattern=_FIRST_DIGIT, replacement=rf"\1{digits}\2"
            )
            table = table.set_column(i, field, column)
    return table


def regional_nhs(table: pa.Table, seed: int, region: int) -> pa.Table:
    """Identity records with each distinct NHS number replaced by one of the region's own."""
    if "nhs_number" not in table.column_names:
        return table
    column = table.column("nhs_number")
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    numbers = pc.cast(column.filter(pc.is_valid(column)), pa.int64()).to_numpy()
    distinct, position = np.unique(numbers, return_inverse=True)
    fresh = regional_nhs_numbers(distinct.size, seed, region)
    out = np.zeros(valid.size, dtype=np.int64)
    out[valid] = fresh[position]
    renumbered = pc.cast(pa.array(out, mask=~valid), pa.large_string())
    index = table.schema.get_field_index("nhs_number")
    return table.set_column(index, table.schema.field(index), renumbered)


class _Writers:
    """One Parquet writer per table, each region's rows appended as row groups."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.writers: dict[str, pq.ParquetWriter] = {}

    def path(self, name: str) -> Path:
        """Where a table is written until every region is in (then renamed)."""
        return self.directory / f"{name}.parquet.partial"

    def write(self, name: str, table: pa.Table) -> None:
        """Append a region's rows to a table, in the first region's schema."""
        writer = self.writers.get(name)
        if writer is None:
            writer = pq.ParquetWriter(self.path(name), _widened(table.schema))
            self.writers[name] = writer
        if table.schema != writer.schema:
            try:
                table = table.cast(writer.schema)
            except (pa.ArrowInvalid, ValueError) as error:
                raise ValueError(f"{name}: a region's columns differ ({error})") from error
        writer.write_table(table)

    def finish(self) -> None:
        """Close every file and give it its final name."""
        for name, writer in self.writers.items():
            writer.close()
            self.path(name).replace(self.directory / f"{name}.parquet")

    def abandon(self) -> None:
        """Close and remove the partial files (a failed or interrupted run leaves none)."""
        for name, writer in self.writers.items():
            writer.close()
            self.path(name).unlink(missing_ok=True)


def _widened(schema: pa.Schema) -> pa.Schema:
    """The schema with columns that were all missing in the first region typed as text.

    A column with no value in one region has Arrow's null type; the extract's columns that can
    be wholly missing are all text, and a later region's values must fit the file's type.
    """
    fields = [
        field.with_type(pa.large_string()) if pa.types.is_null(field.type) else field
        for field in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


@contextmanager
def _writers(directory: Path) -> Iterator[_Writers]:
    """Writers that are finished on success and removed on any failure."""
    directory.mkdir(parents=True, exist_ok=True)
    writers = _Writers(directory)
    try:
        yield writers
    except BaseException:
        writers.abandon()
        raise
    writers.finish()


def write_national(
    params: WorldParams,
    regions: int,
    directory: Path,
    *,
    progress: Callable[[str], None] | None = None,
    check: Callable[[int, World], None] | None = None,
) -> dict[str, Any]:
    """Draw ``regions`` regions one at a time into one extract; return its manifest.

    ``check`` (optional) sees each region's world before it is written and freed (the
    calibration report: every region is a complete world).
    """
    note = progress or (lambda _step: None)
    manifest: dict[str, Any] | None = None
    described: list[dict[str, Any]] = []
    with _writers(directory) as writers:
        for region, local in enumerate(region_params(params, regions)):

            def step(text: str, region: int = region) -> None:
                note(f"region {region + 1} of {regions}: {text}")

            world = generate_world(local, progress=step)
            if check is not None:
                check(region, world)
            step("writing Parquet")
            for name in (*World.TABLES, *World.PEOPLE_TABLES, *World.IDENTITY_TABLES):
                frame = getattr(world, name)
                if frame is None:
                    continue
                table = regional_ids(pa.Table.from_pandas(frame, preserve_index=False), region)
                if name == "identity_records":
                    table = regional_nhs(table, params.seed, region)
                writers.write(name, table)
                setattr(world, name, None)  # the region's rows are on disk: free them now
            described.append(
                {"region": region, "seed": local.seed, "rows": dict(world.manifest["rows"])}
            )
            manifest = _merged(manifest, world.manifest)
            del world
    assert manifest is not None
    manifest["params"] = params.to_dict()
    manifest["regions"] = described
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _merged(total: Any, part: Any) -> Any:
    """Two manifests as one: counts and child-years added, everything else the first's."""
    if total is None:
        return part
    if isinstance(total, dict) and isinstance(part, dict):
        return {key: _merged(value, part.get(key)) for key, value in total.items()}
    if isinstance(total, list) and isinstance(part, list) and len(total) == len(part):
        return [_merged(a, b) for a, b in zip(total, part, strict=True)]
    numbers = (int, float)
    if isinstance(total, numbers) and isinstance(part, numbers) and not isinstance(total, bool):
        return total + part
    return total
