"""Refusals the service makes on purpose; the HTTP layer maps each kind to a status code."""

from __future__ import annotations

from collections.abc import Sequence


class Refusal(Exception):
    """A request refused on purpose: a stable code, a sentence, and the fields at fault."""

    def __init__(
        self, code: str, message: str, errors: Sequence[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = list(errors) if errors is not None else None


class Invalid(Refusal):
    """The request names fields that are wrong (each with its reason)."""


class NotFound(Refusal):
    """The request names a record the service does not hold."""


class Conflict(Refusal):
    """The request contradicts the state of a record (already decided, a key in use...)."""


def invalid(errors: Sequence[dict[str, str]], message: str = "the request is invalid") -> Invalid:
    """A refusal with field errors."""
    return Invalid("validation_error", message, errors)


def not_found(what: str, identifier: str) -> NotFound:
    """A refusal naming what was looked for."""
    return NotFound("not_found", f"no {what} with id {identifier!r}")
