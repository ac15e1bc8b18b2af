"""The linker's interface as the service uses it (``triage.identity`` satisfies it).

Structural types, so the service does not depend on how the linker is built: the app holds
any object with ``resolve(record, known) -> Resolution`` (``triage.identity.IdentityModel``
in production, a small deterministic fake in the tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd


class CandidateLike(Protocol):
    """A known person the record may be (``triage.identity.Candidate``)."""

    @property
    def person_id(self) -> str:
        """The known person."""
        ...

    @property
    def match_probability(self) -> float:
        """The probability that the record is this person."""
        ...

    @property
    def evidence(self) -> Mapping[str, str]:
        """Per compared field: ``exact``, ``close``, ``differs``, ``missing``..."""
        ...


class ResolutionLike(Protocol):
    """What the linker says about one record (``triage.identity.Resolution``)."""

    @property
    def outcome(self) -> str:
        """``linked``, ``possible_match`` or ``new``."""
        ...

    @property
    def person_id(self) -> str | None:
        """Linked: the person; otherwise None."""
        ...

    @property
    def match_probability(self) -> float | None:
        """The best candidate's probability, None without a candidate."""
        ...

    @property
    def candidates(self) -> Sequence[CandidateLike]:
        """Best first, those at or above the review threshold."""
        ...


class Resolver(Protocol):
    """The linker (``triage.identity.IdentityModel`` is one)."""

    def resolve(self, record: Mapping[str, Any], known: pd.DataFrame) -> ResolutionLike:
        """Resolve one identity record against the known, resolved ones."""
        ...
