"""Persistence: schema, engine, migrations, the record modules and the extract reader and loader.

The repository functions live in one module per kind of record (``referrals``, ``decisions``,
``scores``, ``audit``, ``idempotency``, ``queue``, ``access``, ``readiness``; ``statements`` holds
their shared Core plumbing); the session and its transaction always belong to the caller.
The prefix says how a function reaches the database:

- ORM, the session's unit of work: ``add_*`` builds a ``*Row``, adds it and flushes;
  ``save_*`` inserts or updates one; ``get_*``, ``latest_*``, ``list_*`` and ``*_for_*``
  return ``*Row`` objects held by the session.
- Core, prebuilt statements on the session's connection for the hot paths (intake, scoring):
  ``insert_*`` (``insert_*_if_new`` skips a stored key), ``upsert_*`` and ``read_*`` put no
  object in the session and return plain values.
- The rest are single domain steps (``record_decision``, ``reopen_referral``,
  ``claim_idempotency_key``, ``revoke_api_key``...) or queries named after their result
  (``queue_page``, ``open_referrals_affected_by``...); each docstring says what it returns.
"""

from triage.store.access import (
    add_api_key,
    add_user,
    get_api_key_by_hash,
    get_user,
    get_user_by_username,
    revoke_api_key,
    set_password_hash,
)
from triage.store.audit import (
    add_audit_event,
    insert_audit_event,
)
from triage.store.decisions import (
    add_dispute,
    decisions_for_referral,
    decisions_for_referrals,
    disputes_for_referral,
    record_decision,
    record_exists,
    reopen_referral,
)
from triage.store.engine import make_engine, make_read_engine, session_factory
from triage.store.errors import (
    ChildNotFound,
    DuplicateEvent,
    DuplicateReferral,
    ExtractError,
    ReferralAlreadyDecided,
    ReferralNotDecided,
    ReferralNotFound,
    StoreError,
)
from triage.store.idempotency import (
    claim_idempotency_key,
    get_idempotency_key,
    store_idempotent_response,
)
from triage.store.queue import (
    QueueFilter,
    get_queue_entry,
    insert_queue_entries_if_new,
    insert_queue_entry,
    open_referrals_missing_from_queue,
    queue_conditions,
    queue_entries_to_score,
    queue_model_version,
    queue_page,
    remove_queue_entry,
    save_queue_entry,
    upsert_queue_entry,
)
from triage.store.readiness import (
    touch_store_probe,
)
from triage.store.referrals import (
    HistoryItem,
    add_child,
    add_event,
    add_household,
    add_referral,
    get_child,
    get_referral,
    get_referral_by_business_key,
    history_for_child,
    identity_to_confirm,
    insert_child_if_new,
    insert_household_if_new,
    insert_referral,
    list_open_referrals,
    open_referrals_affected_by,
    read_child_birth_and_household,
    read_child_identity,
    read_referral_facts,
    read_referral_id_by_business_key,
)
from triage.store.scores import (
    add_score,
    insert_score,
    latest_score,
    latest_scores,
)
from triage.store.tables import (
    ApiKeyRow,
    AuditEventRow,
    Base,
    ChildRow,
    DecisionRow,
    DisputeRow,
    EventRow,
    HouseholdRow,
    IdempotencyKeyRow,
    OutcomeRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
    UserRow,
)

__all__ = [
    "ApiKeyRow",
    "AuditEventRow",
    "Base",
    "ChildNotFound",
    "ChildRow",
    "DecisionRow",
    "DisputeRow",
    "DuplicateEvent",
    "DuplicateReferral",
    "EventRow",
    "ExtractError",
    "HistoryItem",
    "HouseholdRow",
    "IdempotencyKeyRow",
    "OutcomeRow",
    "QueueEntryRow",
    "QueueFilter",
    "ReferralAlreadyDecided",
    "ReferralNotDecided",
    "ReferralNotFound",
    "ReferralRow",
    "ScoreRow",
    "StoreError",
    "UserRow",
    "add_api_key",
    "add_audit_event",
    "add_child",
    "add_dispute",
    "add_event",
    "add_household",
    "add_referral",
    "add_score",
    "add_user",
    "claim_idempotency_key",
    "decisions_for_referral",
    "decisions_for_referrals",
    "disputes_for_referral",
    "get_api_key_by_hash",
    "get_child",
    "get_idempotency_key",
    "get_queue_entry",
    "get_referral",
    "get_referral_by_business_key",
    "get_user",
    "get_user_by_username",
    "history_for_child",
    "identity_to_confirm",
    "insert_audit_event",
    "insert_child_if_new",
    "insert_household_if_new",
    "insert_queue_entries_if_new",
    "insert_queue_entry",
    "insert_referral",
    "insert_score",
    "latest_score",
    "latest_scores",
    "list_open_referrals",
    "make_engine",
    "make_read_engine",
    "open_referrals_affected_by",
    "open_referrals_missing_from_queue",
    "queue_conditions",
    "queue_entries_to_score",
    "queue_model_version",
    "queue_page",
    "read_child_birth_and_household",
    "read_child_identity",
    "read_referral_facts",
    "read_referral_id_by_business_key",
    "record_decision",
    "record_exists",
    "remove_queue_entry",
    "reopen_referral",
    "revoke_api_key",
    "save_queue_entry",
    "session_factory",
    "set_password_hash",
    "store_idempotent_response",
    "touch_store_probe",
    "upsert_queue_entry",
]
