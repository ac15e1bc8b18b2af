"""The calibration report: each generated figure beside its published target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from triage.synth.calibration_targets import Target, load_targets
from triage.synth.population import YEAR
from triage.vocab import PROFESSIONAL_REFERRERS, RELATIVE_OR_FRIEND, OutcomeLevel, ReferrerType

if TYPE_CHECKING:
    from triage.synth.layout import World

REST_SOURCES = (
    ReferrerType.education_services,
    ReferrerType.housing,
    ReferrerType.other_legal,
    ReferrerType.other,
    ReferrerType.anonymous,
    ReferrerType.unknown,
)


@dataclass(frozen=True)
class CalibrationRow:
    """One generated figure against its target."""

    target: Target
    value: float

    @property
    def difference(self) -> float:
        """Generated minus target."""
        return self.value - self.target.target

    @property
    def ok(self) -> bool:
        """Within the tolerance for its kind."""
        return self.target.within_tolerance(self.value)


def _days(ts: pd.Series, start: date) -> np.ndarray:
    """Timestamps as days from the window start."""
    origin = pd.Timestamp(start.isoformat(), tz="UTC")
    return ((ts - origin) / pd.Timedelta(days=1)).to_numpy(dtype=float)


def _rereferral_share(referrals: pd.DataFrame, start: date, steady: np.ndarray) -> float:
    """Share of referrals with an earlier referral of the same child in the previous 12 months."""
    t = _days(referrals["received_at"], start)
    child = pd.factorize(referrals["child_id"])[0]
    order = np.lexsort((t, child))
    c, tt = child[order], t[order]
    previous_same_child = np.r_[False, c[1:] == c[:-1]]
    gap = np.r_[np.inf, np.diff(tt)]
    rerefer = np.empty(t.size, dtype=bool)
    rerefer[order] = previous_same_child & (gap <= 365.0)
    return float(rerefer[steady].mean())


def _on_plan(events: pd.DataFrame, day: pd.Timestamp) -> int:
    """Children with more plan starts than plan ends by ``day``."""
    plans = events[events["kind"].isin(["cp_plan_start", "cp_plan_end"])]
    plans = plans[plans["occurred_at"] <= day]
    counts = plans.groupby(["child_id", "kind"]).size().unstack(fill_value=0)
    starts = counts.get("cp_plan_start", pd.Series(0, index=counts.index))
    ends = counts.get("cp_plan_end", pd.Series(0, index=counts.index))
    return int((starts > ends).sum())


def figures(world: World) -> dict[str, float]:
    """Every calibrated figure computed from the extract's tables and its manifest."""
    refs, events, outcomes, children = world.referrals, world.events, world.outcomes, world.children
    start = date.fromisoformat(world.manifest["window"]["start"])
    end = date.fromisoformat(world.manifest["window"]["end"])
    population = world.manifest["population"]
    t = _days(refs["received_at"], start)
    steady = t >= YEAR  # the first year has no history to re-refer from
    out: dict[str, float] = {}

    shares = refs.loc[steady, "referrer_type"].value_counts(normalize=True)
    for source in ReferrerType:
        out[f"source_{source.value}"] = float(shares.get(source.value, 0.0))
    out["source_rest"] = sum(out[f"source_{s.value}"] for s in REST_SOURCES)
    out["rereferral_12m"] = _rereferral_share(refs, start, steady)

    levels = outcomes["highest_level"].value_counts(normalize=True)
    for level in OutcomeLevel:
        out[f"funnel_{level.value}"] = float(levels.get(level.value, 0.0))

    marches = population["children_at_31_march"]
    mean_children = float(np.mean([m["children"] for m in marches]))
    steady_years = ((end - start).days - YEAR) / YEAR
    ev_t = _days(events["occurred_at"], start)
    s47 = (events["kind"] == "s47_enquiry").to_numpy() & (ev_t >= YEAR)
    out["s47_per_10000"] = s47.sum() / steady_years / mean_children * 10_000
    on_plan = [
        _on_plan(events, pd.Timestamp(m["date"], tz="UTC") + pd.Timedelta(days=1)) / m["children"]
        for m in marches
    ]
    out["cp_plans_31_march_per_10000"] = float(np.mean(on_plan) * 10_000)

    starts = events[events["kind"] == "cp_plan_start"][["child_id", "occurred_at"]]
    dob = children.set_index("child_id")["date_of_birth"]
    born = pd.to_datetime(starts["child_id"].map(dob)).dt.tz_localize("UTC")
    age = ((starts["occurred_at"] - born) / pd.Timedelta(days=YEAR)).to_numpy()
    age_year = np.floor(age).astype(int)
    victims_by_age = []
    for a in range(18):
        victims = starts["child_id"][age_year == a].nunique()
        victims_by_age.append(victims / population["child_years_by_age"][a] * 1_000)
    out["victims_under_1_per_1000"] = float(victims_by_age[0])
    out["victim_rate_peak_age"] = float(np.argmax(victims_by_age))

    plans = outcomes[outcomes["highest_level"] == OutcomeLevel.cp_plan.value]
    out["neglect_share_cp_plans"] = float((plans["cp_category"] == "neglect").mean())
    out.update(_voices(refs, outcomes, world.truth))
    out.update(_families(population))
    out.update(_identities(world, start))
    return out


HEALTH_SYSTEMS = ("health-records", "health-referral-hub")
IDENTITY_KEYS = (
    "identity_given_name_differs",
    "identity_family_name_differs",
    "identity_dob_differs_health",
    "identity_dob_day_month_swapped",
    "identity_nhs_missing_health",
    "identity_nhs_missing_elsewhere",
    "identity_duplicate_records",
    "twins_share_of_children",
    "ethnicity_not_stated_children",
    "sharing_delay_police_days",
    "sharing_delay_health_days",
    "sharing_delay_school_days",
    "sharing_delay_housing_days",
)


def _identities(world: World, start: date) -> dict[str, float]:
    """Identity noise measured against the truth, twins, missing ethnicity, sharing delays."""
    out = dict.fromkeys(IDENTITY_KEYS, float("nan"))
    children = world.children
    twins = children.duplicated(["household_id", "date_of_birth", "family_name"], keep=False)
    out["twins_share_of_children"] = float(twins.mean())
    out["ethnicity_not_stated_children"] = float(children["ethnicity"].eq("not_stated").mean())
    events = world.events
    if "recorded_at" in events.columns:
        delay = _days(events["recorded_at"], start) - _days(events["occurred_at"], start)
        medians = pd.Series(delay).groupby(events["agency"].to_numpy()).median()
        for agency in ("police", "health", "school", "housing"):
            out[f"sharing_delay_{agency}_days"] = float(medians.get(agency, float("nan")))
    records, truth, persons = world.identity_records, world.identity_truth, world.persons
    if records is None or truth is None or persons is None or records.empty:
        return out
    person = truth.set_index("record_id")["person_id"].reindex(records["record_id"]).to_numpy()
    true = persons.set_index("person_id").loc[person]
    for column in ("given_name", "family_name"):
        typed = records[column].to_numpy(dtype=object)
        known = pd.notna(typed)
        differs = typed[known] != true[column].to_numpy(dtype=object)[known]
        out[f"identity_{column}_differs"] = float(differs.mean())
    typed_dob = pd.to_datetime(records["date_of_birth"])
    true_dob = pd.to_datetime(true["date_of_birth"]).to_numpy()
    dob_known = typed_dob.notna().to_numpy()
    dob_differs = typed_dob.to_numpy() != true_dob
    health = records["source_system"].isin(HEALTH_SYSTEMS).to_numpy()
    out["identity_dob_differs_health"] = float(dob_differs[health & dob_known].mean())
    td = pd.DatetimeIndex(true_dob)
    swapped = (
        dob_known
        & (typed_dob.dt.day.to_numpy() == td.month)
        & (typed_dob.dt.month.to_numpy() == td.day)
        & (td.day != td.month)
    )
    out["identity_dob_day_month_swapped"] = float(swapped.mean())
    missing = records["nhs_number"].isna().to_numpy()
    out["identity_nhs_missing_health"] = float(missing[health].mean())
    out["identity_nhs_missing_elsewhere"] = float(missing[~health].mean())
    keyed = pd.DataFrame({"system": records["source_system"].to_numpy(), "person": person})
    out["identity_duplicate_records"] = float(keyed.duplicated().mean())
    return out


def _families(population: dict[str, Any]) -> dict[str, float]:
    """Family types across the population at each 31 March, and harm by family type."""
    nan = float("nan")
    counts = pd.DataFrame(population.get("families_at_31_march", []))
    harm = population.get("harm_by_family_type", {})

    def rate(family: str) -> float:
        row = harm.get(family, {})
        years = row.get("child_years", 0.0)
        return row.get("episodes", 0) / years if years else nan

    both = rate("two_parents")
    return {
        "lone_parent_share": counts["lone_parent"].sum() / counts["families"].sum()
        if len(counts)
        else nan,
        "step_family_share": counts["step"].sum() / counts["couple"].sum() if len(counts) else nan,
        "harm_ratio_unrelated_two_parents": rate("unrelated_adult") / both,
        "harm_ratio_step_two_parents": rate("step_parent") / both,
        "harm_ratio_lone_two_parents": rate("lone_parent") / both,
    }


def _voices(refs: pd.DataFrame, outcomes: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Whose voice: intentionally false referrals, and latent harm by who referred."""
    truth = truth.set_index("referral_id")
    false = truth["channel"].eq("malicious")
    harm = truth["harm_12m"]
    by_ref = refs.set_index("referral_id")
    relative = by_ref["referrer_relationship"].isin([r.value for r in RELATIVE_OR_FRIEND])
    professional = by_ref["referrer_type"].isin([t.value for t in PROFESSIONAL_REFERRERS])
    individual = by_ref["referrer_type"].eq(ReferrerType.individual.value)
    assessed = outcomes.loc[
        outcomes["highest_level"] != OutcomeLevel.no_further_action.value, "referral_id"
    ]
    relative_harm = float(harm.reindex(by_ref.index[relative]).mean())
    professional_harm = float(harm.reindex(by_ref.index[professional]).mean())
    return {
        "false_among_investigated": float(false.reindex(assessed).mean()),
        "false_custody_dispute": float(false[truth["custody_dispute"]].mean()),
        "false_among_individuals": float(false.reindex(by_ref.index[individual]).mean()),
        "harm_relative_referred": relative_harm,
        "harm_professional_referred": professional_harm,
        "harm_ratio_relative_professional": relative_harm / professional_harm,
    }


def calibration_rows(world: World) -> list[CalibrationRow]:
    """Generated figures beside their targets, in the targets file's order."""
    values = figures(world)
    return [CalibrationRow(target=t, value=values[t.key]) for t in load_targets()]


def _format(kind: str, value: float) -> str:
    """A share as a percentage, a ratio with two decimals, a rate with one."""
    if value != value:  # no published figure
        return "-"
    if kind.startswith("share"):
        prefix = "≤ " if kind == "share_at_most" else ""
        return f"{prefix}{value * 100:.1f}%"
    if kind == "ratio_at_least":
        return f"{value:.2f}"
    return f"{value:.1f}"


def _difference(target: Target, row: CalibrationRow) -> str:
    """Generated against target in the target's own terms."""
    if target.target != target.target:
        return "-"
    if target.kind == "share":
        return f"{row.difference * 100:+.1f} pp"
    if target.kind == "share_at_most":
        return f"{row.difference * 100:+.1f} pp"
    if target.kind == "ratio_at_least":
        return f"{row.difference:+.2f}"
    return f"{row.difference / target.target * 100:+.1f}%"


def print_report(world: World, console: Console | None = None) -> bool:
    """Print the calibration report; return whether every checked figure is within tolerance."""
    console = console or Console()
    table = Table(title="Calibration: synthetic world against published figures", show_lines=False)
    for column in ("figure", "generated", "target", "difference", "", "source"):
        table.add_column(column, overflow="fold")
    rows = calibration_rows(world)
    for row in rows:
        t = row.target
        diff = _difference(t, row)
        verdict = ("[green]ok[/]" if row.ok else "[red]off[/]") if t.checked else "[dim]info[/]"
        shown_kind = "share" if t.kind == "share_at_most" else t.kind
        table.add_row(
            t.label, _format(shown_kind, row.value), _format(t.kind, t.target), diff, verdict,
            f"{t.source}, {t.year}",
        )  # fmt: skip
    console.print(table)
    peak = int(figures(world)["victim_rate_peak_age"])
    console.print(f"Highest victimisation rate at age: {peak} (target: under 1)")
    ok = all(r.ok for r in rows if r.target.checked) and peak == 0
    console.print(
        "[green]Every checked figure is within tolerance[/] (shares ±2 pp, rates ±15%, bounds met)."
        if ok
        else "[red]Some figures are outside tolerance.[/]"
    )
    return ok
