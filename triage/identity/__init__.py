"""Identity resolution: which known person an agency's identity record is (Splink, DuckDB)."""

from triage.identity.model import (
    LINK_AT,
    REVIEW_FROM,
    BatchLinkage,
    Candidate,
    IdentityModel,
    Resolution,
)
from triage.identity.store import default_model, model_path

__all__ = [
    "LINK_AT",
    "REVIEW_FROM",
    "BatchLinkage",
    "Candidate",
    "IdentityModel",
    "Resolution",
    "default_model",
    "model_path",
]
