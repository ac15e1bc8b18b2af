"""The relations the compiled query reads, as views over an extract's tables, on any dialect.

* ``src_referrals``: the referrals table with ``row_order`` (the reader adds it);
* ``src_children``: child_id, date_of_birth;
* ``src_events``: the events table, with ``person_id`` and ``recorded_at`` (null when the
  extract lacks them: every event known when it occurred);
* ``src_decisions``: referral_id, decided_at, decision;
* ``src_memberships``: household_memberships, or each child in its household since birth
  (an extract without people tables, as the numpy builder does);
* ``src_births``: person_id, date_of_birth (persons', else children's).
"""

from __future__ import annotations

from collections.abc import Callable

from features.sql.dialect import Dialect, literal
from triage.vocab import CHILD_MEMBERSHIP_PREFIX, HouseholdRole

OPTIONAL_EVENT_COLUMNS = (("person_id", "string"), ("recorded_at", "timestamp"))


def source_views(
    read: Callable[[str], str | None],
    columns_of: Callable[[str], list[str]],
    dialect: Dialect,
) -> list[str]:
    """The statements creating the ``src_*`` views; ``read(table)`` gives a table as a
    relation (None when the extract lacks it), ``columns_of(relation)`` its column names."""

    def need(table: str) -> str:
        relation = read(table)
        if relation is None:
            raise FileNotFoundError(f"the extract has no {table} table")
        return relation

    view = dialect.create_view
    types = {"string": dialect.string_type, "timestamp": dialect.timestamp_type}
    referrals, children, events = need("referrals"), need("children"), need("events")
    present = set(columns_of(events))
    event_columns = [
        column if column in present else f"CAST(NULL AS {types[kind]}) AS {column}"
        for column, kind in OPTIONAL_EVENT_COLUMNS
    ]
    statements = [
        f"{view} src_referrals AS SELECT * FROM {referrals}",
        f"{view} src_children AS SELECT child_id, date_of_birth FROM {children}",
        f"{view} src_events AS SELECT event_id, child_id, household_id, occurred_at, kind, "
        f"agency, {', '.join(event_columns)} FROM {events}",
        f"{view} src_decisions AS SELECT referral_id, decided_at, decision "
        f"FROM {need('decisions')}",
    ]
    memberships, persons = read("household_memberships"), read("persons")
    if memberships is None:  # each child in its household since birth
        statements.append(
            f"{view} src_memberships AS SELECT "
            f"{literal(CHILD_MEMBERSHIP_PREFIX)} || child_id AS membership_id, "
            f"child_id AS person_id, household_id, {literal(HouseholdRole.child.value)} AS role, "
            f"CAST(CAST(date_of_birth AS DATE) AS {dialect.timestamp_type}) AS joined_at, "
            f"CAST(NULL AS {dialect.timestamp_type}) AS left_at FROM {children}"
        )
    else:
        statements.append(
            f"{view} src_memberships AS SELECT membership_id, person_id, household_id, role, "
            f"joined_at, left_at FROM {memberships}"
        )
    births = (
        f"SELECT person_id, date_of_birth FROM {persons}"
        if persons is not None
        else f"SELECT child_id AS person_id, date_of_birth FROM {children}"
    )
    statements.append(f"{view} src_births AS {births}")
    return statements
