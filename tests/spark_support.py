"""What the Spark tests share: one local[2] session per module, refusing to skip under CI.

Needs pyspark and a Java runtime (Debian's openjdk-17-jre-headless; ``.ci/run`` installs it).
Test modules import the fixture by name (``# noqa: F401``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local[2] session, small and quiet, in UTC."""
    if shutil.which("java") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the Spark parity tests: java must be installed")
        pytest.skip("needs a Java runtime")
    pytest.importorskip("pyspark.sql")
    from splink.backends.spark import similarity_jar_location

    from features.sql.spark import spark_session

    # One JVM serves the whole test process, and only its launch can put a jar on its class
    # path: Splink's similarity functions, for the identity agreement test that runs later.
    jars = f"--jars {similarity_jar_location()} pyspark-shell"
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", jars)
    session = spark_session("local[2]", "triage-tests")
    yield session
    session.stop()
