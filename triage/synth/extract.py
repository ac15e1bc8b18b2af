"""Write extracts: a Parquet file per table and a manifest (``triage.store.extract`` reads them)."""

from __future__ import annotations

import json
from pathlib import Path

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
    for table in (*World.PEOPLE_TABLES, *World.IDENTITY_TABLES):
        frame = getattr(world, table)
        if frame is not None:
            path = directory / f"{table}.parquet"
            frame.to_parquet(path, index=False)
            paths[table] = path
    manifest = directory / MANIFEST
    manifest.write_text(json.dumps(world.manifest, indent=2), encoding="utf-8")
    paths["manifest"] = manifest
    return paths
