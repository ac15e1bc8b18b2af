"""The catalogue compiled to SQL: every signal from its declaration, none written by hand.

The query reads six relations the engine provides (``src_referrals``, ``src_children``,
``src_events``, ``src_decisions``, ``src_memberships``, ``src_births``; columns in
``features.sql.engine``) and returns one row per referral: ``referral_id`` then one DOUBLE
column per signal, in the referrals' order.

The time rule, as join conditions on integer milliseconds (floored): a record pairs with a
referral only if ``r.t_ms < q.t_ms`` (strictly before: the same millisecond, the referral
itself included, never counts), an event also only if ``r.known_ms < q.t_ms`` (recorded
before it), and inside a window of D days only if ``r.t_ms >= q.t_ms - D days`` (the edge
counts). Each (source, entity) pairs its records once, within the group's longest window;
each signal is then one ``CASE`` inside a ``GROUP BY row_order`` aggregate. The pairs and
aggregates are keyed by the referral's ``row_order`` (an integer, unique per referral), not
its string ``referral_id``: hashing, sorting and joining a long is cheaper than a string
(on Spark, whose hash aggregates and sort-merge joins spent their time on the strings).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from features.catalogue import (
    CATALOGUE,
    ENDED_BY,
    PERSON_RECORD_KINDS,
    Aggregation,
    Entity,
    Filter,
    Signal,
    Source,
)
from features.records import MS_PER_DAY
from features.sql.dialect import DUCKDB, Dialect, literal
from triage.vocab import Concern, InjurySite

HISTORY_SOURCES = (Source.referrals, Source.events, Source.decisions)
RECORD_COLUMNS: dict[Source, tuple[str, ...]] = {
    Source.referrals: (
        "t_ms",
        "referrer_type",
        "referrer_relationship",
        "referrer_id",
        "concerns",
        "injury_reported",
        "injury_sites",
    ),
    Source.events: ("event_id", "t_ms", "known_ms", "kind", "agency"),
    Source.decisions: ("t_ms", "decision"),
}
"""The columns each history source's pairs carry (what its filters and aggregations read)."""
RELATIONS = {Source.referrals: "refs", Source.events: "events", Source.decisions: "decisions"}


class SignalsNotCompiled(NotImplementedError):
    """Some signals' declarations have no SQL rendering yet (named, with the reason)."""

    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = reasons
        listed = "; ".join(f"{name}: {why}" for name, why in reasons.items())
        super().__init__(f"{len(reasons)} signal(s) not compiled to SQL: {listed}")


@dataclass(frozen=True)
class CompiledQuery:
    """One SELECT computing the signals, and the signals in its column order."""

    sql: str
    signals: tuple[Signal, ...]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(literal(v) for v in values)})"


def _any_of(parts: list[str]) -> str:
    return "(" + " OR ".join(parts) + ")"


def _all_of(parts: list[str]) -> str:
    return "(" + " AND ".join(parts) + ")" if parts else "TRUE"


def _unsupported(flt: Filter, allowed: set[str]) -> list[str]:
    """The filter's restricting fields that a source cannot apply."""
    empty = Filter()
    return [
        name
        for name in flt.__dataclass_fields__
        if getattr(flt, name) != getattr(empty, name) and name not in allowed
    ]


REFERRAL_FIELDS = {
    "referrer_types",
    "relationships",
    "concerns",
    "injury_reported",
    "injury_head_face_neck",
}
FILTER_FIELDS: dict[Source, set[str]] = {
    Source.referral: REFERRAL_FIELDS | {"max_age_months"},
    Source.referrals: REFERRAL_FIELDS,
    Source.events: {"kinds"},
    Source.decisions: {"decisions"},
    Source.memberships: {"roles", "person_records", "lives_there"},
    Source.household_changes: set(),
}
AGGREGATIONS: dict[Source, set[Aggregation]] = {
    Source.referral: {Aggregation.value, Aggregation.exists},
    Source.referrals: {
        Aggregation.count,
        Aggregation.exists,
        Aggregation.distinct_count,
        Aggregation.days_since,
        Aggregation.max_same_concern,
    },
    Source.events: {
        Aggregation.count,
        Aggregation.exists,
        Aggregation.distinct_count,
        Aggregation.days_since,
    },
    Source.decisions: {Aggregation.count, Aggregation.exists, Aggregation.days_since},
    Source.memberships: {Aggregation.count, Aggregation.exists},
    Source.household_changes: {Aggregation.count},
}


def why_not(signal: Signal) -> str | None:
    """Why a signal's declaration cannot be compiled yet, or None when it can."""
    if signal.aggregation not in AGGREGATIONS[signal.source]:
        return f"aggregation {signal.aggregation.value} over {signal.source.value}"
    extra = _unsupported(signal.filter, FILTER_FIELDS[signal.source])
    if extra:
        return f"filter {', '.join(extra)} on {signal.source.value}"
    if signal.aggregation is Aggregation.value and not signal.reads_as_age:
        return "a referral value other than the child's age"
    counted = signal.aggregation is Aggregation.distinct_count
    if counted and signal.distinct_of not in RECORD_COLUMNS[signal.source]:
        return f"distinct count of {signal.distinct_of!r}"
    if signal.source is Source.referral and signal.window_days is not None:
        return "a window on the referral itself"
    return None


class _Compiler:
    """Builds the CTEs and the final SELECT for a tuple of signals on one dialect."""

    def __init__(self, signals: tuple[Signal, ...], dialect: Dialect) -> None:
        self.signals = signals
        self.d = dialect
        self.ctes: list[tuple[str, str]] = []
        self.joins: list[str] = []
        self.columns: dict[str, str] = {}

    # --- the base relations: times as floored ms, the child's age -------------------------

    def base(self) -> None:
        d = self.d
        self.ctes.append(
            (
                "refs",
                f"""SELECT q.referral_id, q.row_order, q.child_id, q.household_id,
    {d.floor_ms("q.received_at")} AS t_ms, q.referrer_type, q.referrer_relationship,
    q.referrer_id, q.concerns, q.injury_reported, q.injury_sites
  FROM src_referrals q""",
            )
        )
        received, born = d.day_of_ms("q.t_ms"), d.as_date("c.date_of_birth")
        self.ctes.append(
            (
                "refs_aged",
                f"""SELECT q.*,
    (year({received}) - year({born})) * 12 + (month({received}) - month({born}))
      - CASE WHEN day({received}) < day({born}) THEN 1 ELSE 0 END AS age_months
  FROM refs q LEFT JOIN src_children c ON c.child_id = q.child_id""",
            )
        )
        occurred = d.floor_ms("e.occurred_at")
        self.ctes.append(
            (
                "events",
                f"""SELECT e.event_id, e.child_id, e.household_id, e.person_id,
    {occurred} AS t_ms,
    GREATEST({d.floor_ms("coalesce(e.recorded_at, e.occurred_at)")}, {occurred}) AS known_ms,
    e.kind, e.agency
  FROM src_events e""",
            )
        )
        self.ctes.append(
            (
                "decisions",
                f"""SELECT r.child_id, r.household_id, {d.floor_ms("x.decided_at")} AS t_ms,
    x.decision
  FROM src_decisions x JOIN refs r ON r.referral_id = x.referral_id""",
            )
        )
        joined = d.floor_ms("m.joined_at")
        self.ctes.append(
            (
                "memberships",
                f"""SELECT m.membership_id, m.person_id, m.household_id, m.role,
    {joined} AS joined_ms, {d.floor_ms("m.left_at")} AS left_ms,
    coalesce({d.day_of_ms(joined)} = {d.as_date("b.date_of_birth")}, FALSE) AS at_birth
  FROM src_memberships m LEFT JOIN src_births b ON b.person_id = m.person_id""",
            )
        )

    # --- filters ------------------------------------------------------------------------

    def filter_sql(self, flt: Filter, p: str) -> list[str]:
        """Conditions on a record (columns prefixed ``p``) for the filter's fields."""
        d, parts = self.d, []
        if flt.kinds:
            parts.append(_in(f"{p}kind", tuple(k.value for k in flt.kinds)))
        if flt.decisions:
            parts.append(_in(f"{p}decision", tuple(k.value for k in flt.decisions)))
        if flt.referrer_types:
            parts.append(_in(f"{p}referrer_type", tuple(k.value for k in flt.referrer_types)))
        if flt.relationships:
            values = tuple(k.value for k in flt.relationships)
            parts.append(_in(f"{p}referrer_relationship", values))
        if flt.concerns:
            parts.append(_any_of([d.list_has(f"{p}concerns", c.value) for c in flt.concerns]))
        if flt.injury_reported is not None:
            parts.append(f"coalesce({p}injury_reported, FALSE) = {flt.injury_reported}")
        if flt.injury_head_face_neck is not None:
            site = d.list_has(f"{p}injury_sites", InjurySite.head_face_neck.value)
            parts.append(f"{site} = {flt.injury_head_face_neck}")
        return parts

    @staticmethod
    def window_sql(days: int | None, t: str, q_t: str) -> list[str]:
        return [] if days is None else [f"{t} >= {q_t} - {days * MS_PER_DAY}"]

    # --- signals read from the referral itself ------------------------------------------

    def current(self, signal: Signal) -> str:
        if signal.aggregation is Aggregation.value:
            return "CAST(q.age_months AS DOUBLE)"
        parts = self.filter_sql(signal.filter, "q.")
        if signal.filter.max_age_months is not None:
            parts.append(f"q.age_months < {signal.filter.max_age_months}")
        return f"CAST(CASE WHEN {_all_of(parts)} THEN 1 ELSE 0 END AS DOUBLE)"

    # --- history: referrals, events and decisions ----------------------------------------

    def history(self, source: Source, entity: Entity, group: list[Signal]) -> None:
        name = f"{source.value}_{entity.value}"
        windows = [s.window_days for s in group]
        longest = None if None in windows else max(w for w in windows if w is not None)
        cols = ", ".join(f"r.{c}" for c in RECORD_COLUMNS[source])
        rule = ["r.t_ms < q.t_ms", *self.window_sql(longest, "r.t_ms", "q.t_ms")]
        if source is Source.events:
            rule.append("r.known_ms < q.t_ms")
        on = " AND ".join(rule)
        key = f"{entity.value}_id"
        select = f"SELECT q.row_order, q.t_ms AS q_t, q.concerns AS q_concerns, {cols}"
        table = RELATIONS[source]
        pairs = f"{select}\n  FROM refs q JOIN {table} r ON r.{key} = q.{key} AND {on}"
        if source is Source.events and entity is Entity.household:
            # A child who moved brings each earlier household's events from while the child
            # lived there (joined <= t < left); UNION: an event counts once however reached.
            pairs += f"""
  UNION
  {select}
  FROM refs q
  JOIN memberships s ON s.person_id = q.child_id AND s.household_id <> q.household_id
  JOIN events r ON r.household_id = s.household_id AND r.t_ms >= s.joined_ms
    AND (s.left_ms IS NULL OR r.t_ms < s.left_ms) AND {on}"""
        self.ctes.append((f"pairs_{name}", pairs))
        aggregates = []
        for signal in group:
            cond = _all_of(
                self.filter_sql(signal.filter, "")
                + self.window_sql(signal.window_days, "t_ms", "q_t")
            )
            aggregates += self.aggregate(signal, cond)
        self.ctes.append(
            (
                f"agg_{name}",
                f"SELECT row_order,\n    {', '.join(aggregates)}\n  FROM pairs_{name}"
                "\n  GROUP BY row_order, q_t, q_concerns",
            )
        )
        self.joins.append(f"LEFT JOIN agg_{name} ON agg_{name}.row_order = q.row_order")
        for signal in group:
            column = f"agg_{name}.{signal.name}"
            if signal.aggregation is Aggregation.days_since:
                self.columns[signal.name] = f"CAST({column} AS DOUBLE)"
            else:
                self.columns[signal.name] = f"CAST(coalesce({column}, 0) AS DOUBLE)"

    def aggregate(self, signal: Signal, cond: str) -> list[str]:
        agg, n = signal.aggregation, signal.name
        if agg is Aggregation.count:
            return [f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END) AS {n}"]
        if agg is Aggregation.exists:
            return [f"MAX(CASE WHEN {cond} THEN 1 ELSE 0 END) AS {n}"]
        if agg is Aggregation.distinct_count:
            return [f"COUNT(DISTINCT CASE WHEN {cond} THEN {signal.distinct_of} END) AS {n}"]
        if agg is Aggregation.days_since:
            last = f"MAX(CASE WHEN {cond} THEN t_ms END)"
            # Both sides DOUBLE: a literal like 86400000.0 is DECIMAL in Spark SQL and DuckDB,
            # whose division rounds differently from numpy's float64 one (by ~1e-11), enough to
            # put a referral on the other side of a tree's split or a scorecard's bin edge.
            return [f"CAST(q_t - {last} AS DOUBLE) / CAST({MS_PER_DAY} AS DOUBLE) AS {n}"]
        # max_same_concern: per concern of the vocabulary, the window's referrals sharing it,
        # kept only where this referral raises it; the largest of those.
        counts = []
        for c in Concern:
            both = f"{self.d.list_has('concerns', c.value)} AND {cond}"
            shared = f"SUM(CASE WHEN {both} THEN 1 ELSE 0 END)"
            counts.append(
                f"CASE WHEN {self.d.list_has('q_concerns', c.value)} THEN {shared} ELSE 0 END"
            )
        return [f"GREATEST({', '.join(counts)}) AS {n}"]

    # --- who lives with the child ---------------------------------------------------------

    def members(self, group: list[Signal]) -> None:
        self.ctes.append(
            (
                "member_pairs",
                """SELECT q.row_order, q.t_ms AS q_t, m.person_id, m.role, m.joined_ms, m.left_ms
  FROM refs q JOIN memberships m ON m.household_id = q.household_id
    AND m.person_id <> q.child_id AND m.joined_ms < q.t_ms""",
            )
        )
        kinds = sorted(PERSON_RECORD_KINDS)
        self.ctes.append(
            (
                "person_records",
                f"""SELECT event_id, person_id, t_ms, known_ms, kind FROM events
    WHERE person_id IS NOT NULL AND {_in("kind", tuple(kinds))}
  UNION
  SELECT event_id, child_id AS person_id, t_ms, known_ms, kind FROM events
    WHERE child_id IS NOT NULL AND {_in("kind", tuple(kinds))}""",
            )
        )
        ender = (
            "CASE r.kind "
            + " ".join(
                f"WHEN {literal(k.value)} THEN {literal(e.value)}" for k, e in ENDED_BY.items()
            )
            + " END"
        )
        record_sets = sorted({s.filter.person_records for s in group if s.filter.person_records})
        joins = []
        for i, records in enumerate(record_sets):
            # A member's record of these kinds, known before the referral and not ended by an
            # ending record about the same person at or after it, known before the referral.
            self.ctes.append(
                (
                    f"in_force_{i}",
                    f"""SELECT DISTINCT p.row_order, p.person_id
  FROM member_pairs p
  JOIN person_records r ON r.person_id = p.person_id
    AND {_in("r.kind", tuple(k.value for k in records))}
    AND r.t_ms < p.q_t AND r.known_ms < p.q_t
  LEFT JOIN person_records e ON e.person_id = r.person_id AND e.kind = {ender}
    AND e.t_ms >= r.t_ms AND e.t_ms < p.q_t AND e.known_ms < p.q_t
  WHERE e.event_id IS NULL""",
                )
            )
            joins.append(
                f"LEFT JOIN in_force_{i} f{i} ON f{i}.row_order = p.row_order"
                f" AND f{i}.person_id = p.person_id"
            )
        aggregates = []
        for signal in group:
            flt = signal.filter
            parts = self.window_sql(signal.window_days, "p.joined_ms", "p.q_t")
            if flt.roles:
                parts.append(_in("p.role", tuple(r.value for r in flt.roles)))
            if flt.lives_there:
                parts.append("(p.left_ms IS NULL OR p.left_ms >= p.q_t)")
            if flt.person_records:
                parts.append(f"f{record_sets.index(flt.person_records)}.person_id IS NOT NULL")
            aggregates += self.aggregate(signal, _all_of(parts))
        self.ctes.append(
            (
                "agg_members",
                f"SELECT p.row_order,\n    {', '.join(aggregates)}\n  FROM member_pairs p\n  "
                + "\n  ".join(joins)
                + "\n  GROUP BY p.row_order",
            )
        )
        self.joins.append("LEFT JOIN agg_members ON agg_members.row_order = q.row_order")
        for signal in group:
            self.columns[signal.name] = f"CAST(coalesce(agg_members.{signal.name}, 0) AS DOUBLE)"

    def changes(self, group: list[Signal]) -> None:
        select = (
            "SELECT q.row_order, q.t_ms AS q_t, m.membership_id, m.joined_ms, m.left_ms, "
            "m.at_birth\n  FROM refs q JOIN memberships m ON "
        )
        self.ctes.append(
            (
                "change_pairs",
                # The household's memberships and the child's own anywhere (its moves); UNION:
                # the child's membership of this household counts once.
                f"{select}m.household_id = q.household_id AND m.joined_ms < q.t_ms\n  UNION\n  "
                f"{select}m.person_id = q.child_id AND m.joined_ms < q.t_ms",
            )
        )
        sums = []
        for signal in group:
            start = self.window_sql(signal.window_days, "joined_ms", "q_t")
            joins = _all_of(["NOT at_birth", *start])
            left = self.window_sql(signal.window_days, "left_ms", "q_t")
            leaves = _all_of(["left_ms IS NOT NULL", "left_ms < q_t", *left])
            sums.append(
                f"SUM(CASE WHEN {joins} THEN 1 ELSE 0 END"
                f" + CASE WHEN {leaves} THEN 1 ELSE 0 END) AS {signal.name}"
            )
        self.ctes.append(
            (
                "agg_changes",
                f"SELECT row_order,\n    {', '.join(sums)}\n  FROM change_pairs\n"
                "  GROUP BY row_order",
            )
        )
        self.joins.append("LEFT JOIN agg_changes ON agg_changes.row_order = q.row_order")
        for signal in group:
            self.columns[signal.name] = f"CAST(coalesce(agg_changes.{signal.name}, 0) AS DOUBLE)"

    # --- the query ------------------------------------------------------------------------

    def query(self) -> str:
        self.base()
        history: dict[tuple[Source, Entity], list[Signal]] = defaultdict(list)
        members, changes = [], []
        for s in self.signals:
            if s.source is Source.referral:
                self.columns[s.name] = self.current(s)
            elif s.source in HISTORY_SOURCES:
                history[s.source, s.entity].append(s)
            elif s.source is Source.memberships:
                members.append(s)
            else:
                changes.append(s)
        for (source, entity), group in history.items():
            self.history(source, entity, group)
        if members:
            self.members(members)
        if changes:
            self.changes(changes)
        ctes = ",\n".join(f"{name} AS (\n  {body}\n)" for name, body in self.ctes)
        columns = ",\n  ".join(f"{self.columns[s.name]} AS {s.name}" for s in self.signals)
        joins = "\n".join(self.joins)
        return (
            f"WITH {ctes}\nSELECT q.referral_id,\n  {columns}\nFROM refs_aged q\n{joins}\n"
            "ORDER BY q.row_order"
        )


def compile_signals(
    signals: tuple[Signal, ...] = CATALOGUE, dialect: Dialect = DUCKDB
) -> CompiledQuery:
    """One SQL query computing ``signals`` for every referral, or ``SignalsNotCompiled``."""
    reasons = {s.name: why for s in signals if (why := why_not(s)) is not None}
    if reasons:
        raise SignalsNotCompiled(reasons)
    return CompiledQuery(_Compiler(signals, dialect).query(), signals)
