"""Where the trained identity model lives, and the default one."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from triage.identity.model import IdentityModel

PACKAGED_MODEL = Path(__file__).resolve().parent.parent / "data" / "identity_model.json"
"""A model shipped with the package, trained on a synthetic world's identity records."""


def model_path(var_dir: Path | None = None) -> Path:
    """``var_dir/identity/model.json``: where ``triage link train`` writes the model."""
    if var_dir is None:
        from triage.settings import get_settings

        var_dir = get_settings().var_dir
    return var_dir / "identity" / "model.json"


@lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> IdentityModel:
    return IdentityModel.load(path)


def default_model(var_dir: Path | None = None) -> IdentityModel:
    """The trained model at ``model_path(var_dir)``, else the packaged one (cached per file
    version)."""
    path = model_path(var_dir)
    if not path.exists():
        path = PACKAGED_MODEL
    return _load(path, path.stat().st_mtime_ns)
