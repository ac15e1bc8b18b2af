"""The signal catalogue compiled to SQL and run on an engine (DuckDB now; Spark later)."""

from features.sql.compiler import SignalsNotCompiled, compile_signals
from features.sql.engine import build_features, build_features_from_frames

__all__ = ["SignalsNotCompiled", "build_features", "build_features_from_frames", "compile_signals"]
