""" "What the model does not know": one text, derived from the catalogue, for the API and pages."""

from __future__ import annotations

from functools import cache

from features.catalogue import CATALOGUE, ENDED_BY, PROTECTED_INPUTS, Signal, Source
from triage.vocab import EVENT_AGENCY, Agency, EventKind

_ALWAYS_UNSEEN = (
    "what the family, the child or the referrer would say in conversation",
    "the referral's narrative text (only its structured fields are read)",
    "anything that was never recorded, or was recorded by an agency whose records are not "
    "linked to this service",
    "anything dated at or after the moment this referral was received",
)


_ABBREVIATIONS = {
    "ed": "emergency department",
    "nfa": "no further action",
    "cp": "child protection",
    "s47": "section 47",
    "gp": "GP",
}


def _words(name: str) -> str:
    return " ".join(_ABBREVIATIONS.get(w, w) for w in name.split("_"))


def kinds_counted(signal: Signal) -> tuple[EventKind, ...]:
    """The event kinds a signal reads on their own: its events, or its members' records."""
    if signal.source is Source.events:
        return signal.filter.kinds
    if signal.source is Source.memberships:
        records = signal.filter.person_records
        return (*records, *(ENDED_BY[k] for k in records if k in ENDED_BY))
    return ()


def event_kinds_read() -> dict[Agency, list[EventKind]]:
    """Agency event kinds that a signal counts on their own, by agency."""
    read: dict[Agency, list[EventKind]] = {}
    for signal in CATALOGUE:
        for kind in kinds_counted(signal):
            kinds = read.setdefault(EVENT_AGENCY[kind], [])
            if kind not in kinds:
                kinds.append(kind)
    return read


def event_kinds_unread() -> list[EventKind]:
    """Agency event kinds the service stores but no signal reads on its own."""
    counted = {k for s in CATALOGUE for k in kinds_counted(s)}
    return [k for k in EventKind if k not in counted]


@cache
def what_the_model_does_not_know() -> dict[str, list[str] | str]:
    """What the model reads, what it never sees, and a one-paragraph summary."""
    sources = sorted({s.source for s in CATALOGUE}, key=list(Source).index)
    reads = []
    if Source.referral in sources:
        reads.append("this referral's structured fields: concerns, injury, referrer, child's age")
    if Source.referrals in sources:
        reads.append("earlier referrals about the child and the household")
    if Source.decisions in sources:
        reads.append("earlier front-door decisions about the child")
    if Source.memberships in sources:
        reads.append(
            "who lives in the household and since when: adults joining, a parent's partner or "
            "other unrelated adult, and the recorded histories of the adults and other "
            "children living there"
        )
    if Source.household_changes in sources:
        reads.append("people moving in and out of the household, the child's own moves included")
    for agency, kinds in event_kinds_read().items():
        reads.append(f"{_words(agency)} records: " + ", ".join(_words(k) for k in kinds))
    any_contact = [s for s in CATALOGUE if s.source is Source.events and not s.filter.kinds]
    if any_contact:
        reads.append("how many agencies have been in contact with the family recently")
    never = list(_ALWAYS_UNSEEN)
    if unread := event_kinds_unread():
        never.append(
            "what these records say (they count only as a contact): "
            + ", ".join(_words(k) for k in unread)
        )
    never.append(
        "the child's "
        + ", ".join(sorted(_words(p) for p in PROTECTED_INPUTS))
        + " (kept out of the model; used only to audit it)"
    )
    agencies = ", ".join(_words(a) for a in event_kinds_read())
    summary = (
        "The score is a statistical estimate from a few recorded facts: this referral's "
        f"structured fields, earlier referrals and decisions, who lives in the household, and "
        f"records from {agencies}. "
        "It never hears the family, the child or the referrer, never reads the narrative, "
        "and cannot see anything unrecorded, held by an agency that is not linked, or dated "
        "after this referral arrived. It cannot tell whether a record is accurate: dispute "
        "one you believe is wrong to see the score without it. The decision is yours."
    )
    return {"reads": reads, "never_sees": never, "summary": summary}
