"""The hash-chained, append-only audit log: canonical form, hashing, appending and verifying.

Each event's hash is SHA-256 over the previous event's hash and a canonical JSON of the
event (every column but ``id``, ``prev_hash`` and ``hash``), so changing, removing or
reordering a stored event breaks the link to the next one.

The chain alone cannot show that its newest events were removed, nor that someone with write
access rewrote every event and hashed the chain again. Signed checkpoints anchor it: a file
outside the database holding the id, count and hash of the newest event, with an HMAC-SHA256
under a key that is not in the database either (``Settings.get_audit_key``). Verifying
against it finds a chain that ends before the checkpointed event or holds another hash
there; a new checkpoint is written only over a chain that extends the last one.

Retention (``triage.store.audit_retention``) removes the oldest events only after appending an
``audit.expired`` event that records the id and hash of the newest one removed; the walk then
starts from that hash, so the retained events still verify and removing any more of them
beyond the record breaks the first link. The run signs its record into the checkpoint at
once, so a record after the checkpoint is refused: anyone can hash a chain, and a forged
record would otherwise license removing the oldest events.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from triage.store.tables import AuditEventRow

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""

# Any constant works: it only has to be the same for every writer of the chain.
CHAIN_LOCK_KEY = 0x7472_6961_6765  # "triage"

VERIFY_BATCH = 5_000

EXPIRED_ACTION = "audit.expired"
"""The action of the event that records the oldest events' removal by retention."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is: one string for equal JSON values."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def normalise_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload exactly as the JSON column will give it back (what gets hashed)."""
    normalised: dict[str, Any] = json.loads(canonical_json(dict(payload)))
    return normalised


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_document(
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    model_version: str | None,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """The fields of an event that its hash covers."""
    return {
        "occurred_at": _instant(occurred_at),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "model_version": model_version,
        "payload": dict(payload),
    }


def chain_hash(prev_hash: str, document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the previous hash and the event's canonical JSON."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(dict(document)).encode("utf-8"))
    return digest.hexdigest()


def row_hash(row: AuditEventRow, prev_hash: str) -> str:
    """The hash a stored event should carry given the hash before it."""
    return chain_hash(
        prev_hash,
        event_document(
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            model_version=row.model_version,
            payload=row.payload,
        ),
    )


@dataclass(frozen=True)
class BrokenLink:
    """The first event whose stored hashes do not match the chain."""

    event_id: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain."""

    events: int
    head: str
    broken: BrokenLink | None
    head_id: int = 0
    """The id of the newest event walked (0 for an empty chain)."""
    anchored: bool = False
    """True when the walk passed the signed checkpoint's event with the hash it records."""
    expired_through: int = 0
    """The newest event removed by retention (0: the chain still starts at its first event)."""

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return self.broken is None


def _rows(session: Session, from_id: int = 0) -> Iterator[AuditEventRow]:
    from triage.store.tables import AuditEventRow

    last_id = from_id - 1
    while True:
        batch = session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.id > last_id)
            .order_by(AuditEventRow.id)
            .limit(VERIFY_BATCH)
        ).all()
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id
        session.expunge_all()


def verify_chain(session: Session, checkpoint: Checkpoint | None = None) -> ChainReport:
    """Walk every event in id order and report the first broken link, if any.

    With a ``checkpoint`` the chain must also hold its event with its hash: another hash
    there means the chain was rewritten, and a chain that ends before it lost its newest
    events.
    """
    return _walk(session, checkpoint, incremental=False)


@dataclass(frozen=True)
class RetentionStart:
    """Where the stored chain starts: after the events retention removed, or at its genesis."""

    expired_through: int
    prev_hash: str


def retention_start(session: Session) -> RetentionStart:
    """The hash the oldest stored event must chain onto, from the newest ``audit.expired``.

    The record is itself in the chain, so a changed record breaks its own link; it counts
    only when the oldest stored event is after the events it says were removed.
    """
    from triage.store.tables import AuditEventRow

    record = session.scalars(
        select(AuditEventRow.payload)
        .where(AuditEventRow.action == EXPIRED_ACTION)
        .order_by(AuditEventRow.id.desc())
        .limit(1)
    ).first()
    oldest = session.scalar(select(func.min(AuditEventRow.id)))
    if record is None or oldest is None:
        return RetentionStart(0, GENESIS)
    through, head = record.get("expired_through_event"), record.get("expired_through_hash")
    if isinstance(through, int) and isinstance(head, str) and oldest > through:
        return RetentionStart(through, head)
    return RetentionStart(0, GENESIS)


def _walk(session: Session, checkpoint: Checkpoint | None, *, incremental: bool) -> ChainReport:
    """Walk the chain (from the checkpoint's event when ``incremental``)."""
    # An incremental walk starts at the checkpoint's stored event, which carries its own
    # prev_hash: the service's frequent checkpoints need not look for retention records.
    skip_start = incremental and checkpoint is not None and checkpoint.event_id > 0
    start_at = RetentionStart(0, GENESIS) if skip_start else retention_start(session)
    prev = start_at.prev_hash
    count = 0
    head_id = 0
    # A checkpoint of the empty chain (event 0) vouches for the start: every event extends it.
    anchored = checkpoint is not None and checkpoint.event_id == 0
    start = checkpoint.event_id if incremental and checkpoint is not None else 0
    for row in _rows(session, start):
        if checkpoint is not None and not anchored:
            broken = _against_checkpoint(row, checkpoint)
            if broken is not None:
                return ChainReport(count, prev, broken, head_id)
            if row.id == checkpoint.event_id:
                anchored = True
                if incremental:  # the checkpoint vouches for every event up to this one
                    prev, count = row.prev_hash or "", checkpoint.events - 1
        count += 1
        if row.prev_hash != prev:
            return ChainReport(
                count, prev, BrokenLink(row.id, _link_reason(count, start_at)), head_id
            )
        if row.hash != row_hash(row, prev):
            return ChainReport(
                count,
                prev,
                BrokenLink(row.id, "hash does not match the event's contents"),
                head_id,
            )
        if checkpoint is not None and row.id > checkpoint.event_id and row.action == EXPIRED_ACTION:
            return ChainReport(count, prev, BrokenLink(row.id, _UNSIGNED_EXPIRY), head_id)
        prev = row.hash
        head_id = row.id
    if checkpoint is not None and not anchored:
        return ChainReport(
            count,
            prev,
            BrokenLink(
                checkpoint.event_id,
                f"the chain ends at event {head_id} ({count} events) but the signed checkpoint "
                f"records event {checkpoint.event_id} ({checkpoint.events} events): "
                "the newest events were removed",
            ),
            head_id,
        )
    return ChainReport(count, prev, None, head_id, anchored, start_at.expired_through)


_UNSIGNED_EXPIRY = (
    "an audit.expired record after the signed checkpoint: a retention run signs its own "
    "record at once, so this one (and the removal it claims) was not a retention run's"
)


def _link_reason(position: int, start_at: RetentionStart) -> str:
    """Why the ``position``-th stored event's ``prev_hash`` fails (the oldest one says more)."""
    if position > 1:
        return "prev_hash does not match the event before it"
    if start_at.expired_through:
        return (
            "the oldest stored event does not follow the events retention removed (through "
            f"event {start_at.expired_through}): older events were removed outside retention"
        )
    return "the oldest stored event does not chain onto the start: older events were removed"


def _against_checkpoint(row: AuditEventRow, checkpoint: Checkpoint) -> BrokenLink | None:
    """The broken link if ``row`` shows the chain departs from the checkpoint, else None."""
    if row.id > checkpoint.event_id:
        return BrokenLink(
            checkpoint.event_id,
            f"event {checkpoint.event_id}, recorded in the signed checkpoint, is missing "
            "(if `triage retention apply` stopped before re-signing, see docs/operations/"
            "retention.md)",
        )
    if row.id == checkpoint.event_id and row.hash != checkpoint.hash:
        return BrokenLink(
            row.id,
            "hash differs from the one in the signed checkpoint: the chain was rewritten",
        )
    return None


# --- signed checkpoints ---------------------------------------------------------------------

CHECKPOINT_FORMAT = 1


class CheckpointError(Exception):
    """A checkpoint file that cannot be trusted (unreadable, malformed, or a MAC that fails)."""


@dataclass(frozen=True)
class Checkpoint:
    """The newest event of the chain as it was vouched for: id, count of events, hash."""

    event_id: int
    events: int
    hash: str
    written_at: str

    def document(self) -> dict[str, Any]:
        """The fields the MAC covers."""
        return {"format": CHECKPOINT_FORMAT} | asdict(self)


def checkpoint_mac(key: str, checkpoint: Checkpoint) -> str:
    """HMAC-SHA256 (hex) of the checkpoint's canonical JSON under ``key``."""
    message = canonical_json(checkpoint.document()).encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def read_checkpoint(path: Path, key: str | None) -> Checkpoint | None:
    """The checkpoint in ``path`` once its MAC checks out; None if there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
        mac = data.pop("mac")
        if data.pop("format") != CHECKPOINT_FORMAT:
            raise ValueError("unknown format")
        checkpoint = Checkpoint(
            event_id=int(data["event_id"]),
            events=int(data["events"]),
            hash=str(data["hash"]),
            written_at=str(data["written_at"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not an audit checkpoint") from exc
    if key is None:
        raise CheckpointError(
            f"{path} cannot be checked: no audit key (TRIAGE_AUDIT_KEY or var_dir/audit_key)"
        )
    if not hmac.compare_digest(str(mac), checkpoint_mac(key, checkpoint)):
        raise CheckpointError(
            f"the MAC of {path} does not match: the file was changed, or signed with another key"
        )
    return checkpoint


def write_checkpoint(path: Path, key: str, checkpoint: Checkpoint) -> None:
    """Write the signed checkpoint atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = checkpoint.document() | {"mac": checkpoint_mac(key, checkpoint)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(body, sort_keys=True, indent=1) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


@dataclass(frozen=True)
class CheckpointOutcome:
    """What ``checkpoint_chain`` did: the checkpoint now in force, or why it refused."""

    checkpoint: Checkpoint | None
    written: bool
    refused: str | None = None


@contextlib.contextmanager
def checkpoint_lock(path: Path) -> Iterator[None]:
    """Serialise checkpoint writers (several workers, the CLI) on a lock file beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f"{path.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def checkpoint_chain(
    session: Session, path: Path, key: str, *, first: bool = False
) -> CheckpointOutcome:
    """Sign the chain's newest event into ``path``, if the chain extends the checkpoint there.

    Refused (nothing written) when the file there cannot be trusted or the chain does not
    hold its event with its hash: a new checkpoint must never vouch for a rewritten chain.
    With no file, an empty chain is signed as event 0; a chain that already holds events is
    signed only when an operator says so (``first``), since a removed file must not let a
    rewritten chain be vouched for afresh. Only the events after the previous checkpoint are
    walked.
    """
    with checkpoint_lock(path):
        try:
            previous = read_checkpoint(path, key)
        except CheckpointError as exc:
            return CheckpointOutcome(None, False, str(exc))
        report = _walk(session, previous, incremental=previous is not None)
        if report.broken is not None:
            reason = f"event {report.broken.event_id}: {report.broken.reason}"
            return CheckpointOutcome(previous, False, reason)
        if previous is None and report.head_id > 0 and not first:
            return CheckpointOutcome(
                None,
                False,
                f"no signed checkpoint at {path} though the chain holds {report.events} events "
                "(the file was removed, or this store was never anchored); an operator who "
                "knows the chain is good anchors it with `triage auditlog checkpoint --first`",
            )
        if previous is not None and report.head_id <= previous.event_id:
            return CheckpointOutcome(previous, False)
        checkpoint = Checkpoint(
            event_id=report.head_id,
            events=report.events,
            hash=report.head,
            written_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_checkpoint(path, key, checkpoint)
        return CheckpointOutcome(checkpoint, True)
