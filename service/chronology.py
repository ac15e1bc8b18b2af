"""The chronology a social worker reads: records in words, filtered by agency or significance,
routine repeats collapsed with their date span, newest first (no HTTP here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from explain.dates import span_words, uk_date
from features.catalogue import CONCERN_WORDS
from service.plain_names import (
    AGENCY_CHOICES,
    AGENCY_NAMES,
    FRONT_DOOR,
    INJURY_SITE_NAMES,
    ROLE_NAMES,
    agency_name,
    decision_name,
    kind_name,
    referrer_name,
)
from triage.checks import KEY_AGENCY
from triage.vocab import EventKind

ROUTINE_KINDS: frozenset[str] = frozenset(
    {
        EventKind.ed_attendance,
        EventKind.missed_appointment,
        EventKind.absence_concern,
        EventKind.adult_mental_health_contact,
        EventKind.substance_misuse_treatment,
    }
)
"""Contacts that matter as a pattern more than one by one: left out of the significant-events
view and, when they repeat, collapsed into one row with their date span. Every other record
(referrals, decisions, incidents, concerns, enquiries, plans, moves) is a significant event."""
REPEAT_GAP = timedelta(days=92)
"""Routine records of one kind (about one person) at most this far apart are one run."""
VIEWS = ("all", "significant")
ROWS_SHOWN = 100
"""Rows a referral page shows at first, newest first; "Show all" lifts the limit. A child with
500 records has about 300 rows even with repeats collapsed: the page would take most of its
time rendering history older than anyone reads first (issue 22, the page's speed)."""
RUN_LISTED = 10
"""Records a collapsed run lists under the row limit, newest first (a run of missed
appointments over years can hold a hundred); "Show all" lists every one."""


@dataclass(slots=True)
class Entry:
    """One record as the chronology shows it."""

    anchor: str
    record_id: str
    kind: str
    at: datetime
    agency: str
    title: str
    summary: str
    outcome: str
    significant: bool
    signals: tuple[str, ...]
    this_referral: bool = False
    subject: str = ""
    """Whom an agency's record is about: the child, the household, or a named adult."""
    person_id: str | None = None
    disputable: bool = True
    anchors: tuple[str, ...] = ()
    """Further anchors on the row (a referral's decision) that reasons link to."""

    @property
    def agency_name(self) -> str:
        """The agency in plain words."""
        return agency_name(self.agency)


@dataclass(frozen=True)
class Repeats:
    """A run of routine records of one kind: ``5 missed health appointments, June–August``."""

    entries: tuple[Entry, ...]
    """Oldest first."""

    @property
    def at(self) -> datetime:
        """When the latest of them happened (where the run sits in the chronology)."""
        return self.entries[-1].at

    @property
    def title(self) -> str:
        """``5 missed health appointments``."""
        return f"{len(self.entries)} {kind_name(self.entries[0].kind, len(self.entries))}"

    @property
    def span(self) -> str:
        """``June–August 2026``."""
        return span_words(e.at for e in self.entries)

    @property
    def agency(self) -> str:
        """The agency that recorded them."""
        return self.entries[0].agency

    @property
    def signals(self) -> tuple[str, ...]:
        """Signals of the score that used any of them, once each."""
        return tuple(dict.fromkeys(s for e in self.entries for s in e.signals))

    def listed(self, most: int | None) -> tuple[Entry, ...]:
        """The newest ``most`` of them (every one when None), oldest first."""
        return self.entries if most is None else self.entries[-most:]


@dataclass(frozen=True)
class Chronology:
    """The rows to show, newest first, and the filter that chose them."""

    rows: tuple[Entry | Repeats, ...]
    agencies: tuple[tuple[str, str, int], ...]
    """Every agency with records: code, name, how many records."""
    chosen: tuple[str, ...]
    view: str
    shown: int
    """Records in the rows shown."""
    total: int
    matching: int = 0
    """Records the filter chose, shown or not (more than ``shown`` when rows were held back)."""
    more_rows: int = 0
    """Older rows held back by the row limit ("Show all" shows them)."""
    run_listed: int | None = None
    """How many of a run's records are listed (the newest), or None for every one."""
    anchors: frozenset[str] = field(default_factory=frozenset)
    """Anchors present in the rows shown (a reason links in-page only to these)."""
    errors: tuple[str, ...] = ()
    every: tuple[Entry, ...] = ()
    """Every record, shown or not, oldest first (a reason lists its records from these)."""

    @property
    def chosen_names(self) -> list[str]:
        """The chosen agencies in plain words."""
        return [agency_name(a) for a in self.chosen]


def _referral_entry(item: Mapping[str, Any], decision: Mapping[str, Any] | None) -> Entry:
    who = referrer_name(item["referrer_type"], item.get("referrer_relationship"))
    named = (CONCERN_WORDS.get(c, c.replace("_", " ")) for c in item.get("concerns") or ())
    concerns = ", ".join(named)
    summary = f"From {who}" + (f", about {concerns}" if concerns else "")
    if item.get("injury_reported"):
        sites = ", ".join(INJURY_SITE_NAMES.get(s, s) for s in item.get("injury_sites") or ())
        summary += "; injury reported" + (f" ({sites})" if sites else "")
    if decision is not None:
        decided = f"{uk_date(decision['at']):%-d %b %Y}"
        outcome = f"{decision_name(decision['decision'])} (front-door decision, {decided})"
    elif item.get("this_referral"):
        outcome = "This referral: awaiting a decision"
    else:
        outcome = "Open: awaiting a decision"
    signals = tuple(item.get("signals", ())) + tuple(decision["signals"] if decision else ())
    return Entry(
        anchor=f"record-referral-{item['record_id']}",
        record_id=item["record_id"],
        kind="referral",
        at=item["at"],
        agency=FRONT_DOOR,
        title="This referral" if item.get("this_referral") else "Referral",
        summary=summary,
        outcome=outcome,
        significant=True,
        signals=tuple(dict.fromkeys(signals)),
        this_referral=bool(item.get("this_referral")),
        disputable=not item.get("this_referral"),
        anchors=(f"record-decision-{item['record_id']}",) if decision is not None else (),
    )


def _event_entry(item: Mapping[str, Any], names: Mapping[str, str]) -> Entry:
    attributes = item.get("attributes") or {}
    kind = item["event_kind"]
    person = item.get("person_id")
    if person:
        subject = f"About {names.get(person, 'an adult in the household')}"
    elif item.get("about_child", True):
        subject = "About the child"
    else:
        subject = "At the household"
    parts = []
    if attributes.get("role"):
        parts.append(f"as {ROLE_NAMES.get(str(attributes['role']), attributes['role'])}")
    if attributes.get("injury") is True:
        parts.append("an injury was recorded")
    if isinstance(attributes.get("summary"), str):
        parts.append(attributes["summary"])
    outcome = attributes.get("outcome")
    significant = kind not in ROUTINE_KINDS or attributes.get("injury") is True
    return Entry(
        anchor=f"record-event-{item['record_id']}",
        record_id=item["record_id"],
        kind=kind,
        at=item["at"],
        agency=item["agency"],
        title=kind_name(kind),
        subject=subject,
        summary="; ".join(parts),
        outcome=str(outcome) if outcome not in (None, "") else "Not recorded by the agency",
        significant=significant,
        signals=tuple(item.get("signals", ())),
        person_id=person,
    )


TEAM_WORK = {
    "check": "Request for information",
    "strategy": "Strategy discussion",
    "fact": "Recorded by the front door",
}
"""The front door's own work in the chronology (area A's items), by kind."""


_KEY_AGENCY: dict[str, str] = {str(k): str(v) for k, v in KEY_AGENCY.items()}
"""The record agency each asked agency files under (a GP practice under Health)."""


def _team_entry(item: Mapping[str, Any]) -> Entry:
    return Entry(
        anchor=f"record-{item['kind']}-{item['record_id']}",
        record_id=item["record_id"],
        kind=item["kind"],
        at=item["at"],
        agency=str(_KEY_AGENCY.get(item.get("agency") or "", FRONT_DOOR)),
        title=TEAM_WORK[item["kind"]],
        summary=str(item.get("words", "")),
        outcome="",
        significant=True,
        signals=(),
        disputable=False,
    )


def entries(
    timeline: Sequence[Mapping[str, Any]], *, names: Mapping[str, str] | None = None
) -> list[Entry]:
    """The timeline's records in words, oldest first; each decision is its referral's outcome."""
    names = names or {}
    decisions: dict[str, Mapping[str, Any]] = {}
    for item in timeline:
        if item["kind"] == "decision":
            decisions[item["record_id"]] = item  # the latest decision wins: oldest first
    out = []
    seen: set[str] = set()
    for item in timeline:
        if item["kind"] == "referral":
            out.append(_referral_entry(item, decisions.get(item["record_id"])))
        elif item["kind"] == "event":
            out.append(_event_entry(item, names))
        elif item["kind"] in TEAM_WORK:
            entry = _team_entry(item)
            if entry.anchor in seen:  # a request and its reply share the request's id
                entry.anchor += f"-{len(seen)}"
            seen.add(entry.anchor)
            out.append(entry)
    return out


def collapse(shown: Iterable[Entry]) -> list[Entry | Repeats]:
    """Newest first, routine records of one kind (about one person) close in time as one run."""
    runs: dict[tuple[str, str | None], list[list[Entry]]] = {}
    rows: list[Entry | Repeats] = []
    for entry in shown:  # oldest first
        if entry.significant:
            rows.append(entry)
            continue
        key = (entry.kind, entry.person_id)
        kept = runs.setdefault(key, [])
        if kept and entry.at - kept[-1][-1].at <= REPEAT_GAP:
            kept[-1].append(entry)
        else:
            kept.append([entry])
    for kept in runs.values():
        for run in kept:
            rows.append(run[0] if len(run) == 1 else Repeats(tuple(run)))
    rows.sort(key=lambda row: row.at, reverse=True)
    return rows


def chronology(
    timeline: Sequence[Mapping[str, Any]],
    *,
    agencies: Sequence[str] = (),
    view: str = "all",
    names: Mapping[str, str] | None = None,
    limit: int | None = None,
    run_listed: int = RUN_LISTED,
) -> Chronology:
    """The rows for the filter, the newest ``limit`` of them when given, each run then listing
    its newest ``run_listed`` records (unknown agencies or views are reported and left out)."""
    every = entries(timeline, names=names)
    errors = []
    chosen = tuple(a for a in dict.fromkeys(agencies) if a)
    if unknown := [a for a in chosen if a not in AGENCY_NAMES]:
        errors.append(f"Unknown agency {', '.join(unknown)}: showing every agency")
        chosen = tuple(a for a in chosen if a in AGENCY_NAMES)
    if view not in VIEWS:
        errors.append(f"Unknown view {view}: showing every record")
        view = "all"
    counts: dict[str, int] = {}
    for entry in every:
        counts[entry.agency] = counts.get(entry.agency, 0) + 1
    shown = [
        e for e in every if (not chosen or e.agency in chosen) and (view == "all" or e.significant)
    ]
    rows = collapse(shown)
    kept = rows if limit is None else rows[:limit]
    listed = None if limit is None else run_listed
    on_page = [
        e for row in kept for e in (row.listed(listed) if isinstance(row, Repeats) else (row,))
    ]
    anchors = frozenset(a for e in on_page for a in (e.anchor, *e.anchors))
    return Chronology(
        rows=tuple(kept),
        agencies=tuple((a, AGENCY_CHOICES[a], counts[a]) for a in AGENCY_NAMES if a in counts),
        chosen=chosen,
        view=view,
        shown=len(on_page),
        total=len(every),
        matching=len(shown),
        more_rows=len(rows) - len(kept),
        run_listed=listed,
        anchors=anchors,
        errors=tuple(errors),
        every=tuple(every),
    )
