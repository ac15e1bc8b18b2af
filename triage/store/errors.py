"""Exceptions raised by the store, its record modules and the extract reader and loader."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for store errors."""


class DuplicateReferral(StoreError):
    """A referral with the same business key (or id) is already stored."""

    def __init__(self, referral_id: str, source_system: str, source_referral_id: str) -> None:
        super().__init__(
            f"referral {source_system}/{source_referral_id} already stored as {referral_id!r}"
        )
        self.referral_id = referral_id
        self.source_system = source_system
        self.source_referral_id = source_referral_id


class DuplicateEvent(StoreError):
    """An event with the same business key (or id) is already stored."""

    def __init__(self, event_id: str, source_system: str, source_event_id: str) -> None:
        super().__init__(f"event {source_system}/{source_event_id} already stored as {event_id!r}")
        self.event_id = event_id
        self.source_system = source_system
        self.source_event_id = source_event_id


class ReferralNotFound(StoreError, LookupError):
    """No referral with this id."""

    def __init__(self, referral_id: str) -> None:
        super().__init__(f"no referral {referral_id!r}")
        self.referral_id = referral_id


class ChildNotFound(StoreError, LookupError):
    """No child with this id."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"no child {child_id!r}")
        self.child_id = child_id


class ReferralAlreadyDecided(StoreError):
    """A decision was recorded on a referral that is no longer open."""

    def __init__(self, referral_id: str) -> None:
        super().__init__(f"referral {referral_id!r} already has a decision")
        self.referral_id = referral_id


class ExtractError(StoreError, ValueError):
    """An extract file is missing, lacks a required column, or holds an invalid value."""

    def __init__(self, table: str, column: str | None, reason: str) -> None:
        where = f"{table}.{column}" if column else table
        super().__init__(f"{where}: {reason}")
        self.table = table
        self.column = column
        self.reason = reason


class ReferralNotDecided(StoreError):
    """A reopen was asked for a referral that is still open."""

    def __init__(self, referral_id: str) -> None:
        super().__init__(f"referral {referral_id!r} is open; only a decided referral can reopen")
        self.referral_id = referral_id
