"""The audit of a small world, computed once for every fairness test that reads it."""

from __future__ import annotations

import pytest
from fairness_worlds import ATTRS, INTERSECTIONS, _world

from models.fairness import AuditConfig, audit


@pytest.fixture(scope="session")
def small_audit():
    y, p, attributes = _world()
    config = AuditConfig(attributes=ATTRS, intersections=INTERSECTIONS, n_boot=200, min_size=30)
    return y, p, attributes, audit(y, p, attributes, config=config)
