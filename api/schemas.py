"""The error body every HTTP error response carries."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """A stable error code and a sentence."""

    code: str
    message: str


class FieldError(BaseModel):
    """One invalid field: its dotted path (list items by index) and why."""

    field: str
    reason: str


class ErrorOut(BaseModel):
    """Every error response."""

    error: ErrorDetail
    errors: list[FieldError] | None = Field(
        default=None, description="At most 50, in the order found; see `errors_omitted`."
    )
    errors_omitted: int | None = Field(
        default=None, description="How many more field errors there were, when over 50."
    )
