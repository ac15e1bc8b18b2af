"""Write and read extracts: one Parquet file per table, and a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from triage.synth.layout import World

MANIFEST = "manifest.json"


def write_extract(world: World, directory: Path) -> dict[str, Path]:
    """Write every table as ``<table>.parquet`` plus ``manifest.json``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table in World.TABLES:
        path = directory / f"{table}.parquet"
        getattr(world, table).to_parquet(path, index=False)
        paths[table] = path
    manifest = directory / MANIFEST
    manifest.write_text(json.dumps(world.manifest, indent=2), encoding="utf-8")
    paths["manifest"] = manifest
    return paths


def read_extract(directory: Path, *, with_truth: bool = False) -> World:
    """Read an extract written by ``write_extract``; the truth only when asked for."""
    tables = {
        table: pd.read_parquet(directory / f"{table}.parquet")
        for table in World.TABLES
        if table != "truth" or with_truth
    }
    if not with_truth:
        tables["truth"] = pd.DataFrame()
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    return World(manifest=manifest, **tables)
