"""Disclosure control: an attacker with only the published audit recovers no withheld count.

The attacker tries what recovered 1,018 emptied rows from the old export: subtraction from
totals (and from intersections' margins), rates times their denominators, estimates repeated
by comparisons and label gaps, ranking shares times the totals, and reliability bins (summed
to their group, and their rates times their sizes). To be stronger than a real attacker it
is also given the internal structure (which combinations of groups exist) and solves the
linear system exactly. The same attack on the old, row-level suppression must succeed, so
the test has teeth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.fairness import AuditConfig, audit, pseudonymise_document, to_document
from models.fairness._disclosure import Structure

K = 10

Knowledge = dict[str, dict[tuple[str, str], float]]


@pytest.fixture(scope="module")
def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    """A world with a small sex group, rare intersections, two labels and human decisions."""
    rng = np.random.default_rng(11)
    n = 5000
    attributes = pd.DataFrame(
        {
            "ethnicity": rng.choice(["white", "asian", "black", "mixed", "other"], n,
                                    p=[0.6, 0.15, 0.12, 0.1, 0.03]),
            "sex": rng.choice(["female", "male", "unknown"], n, p=[0.4915, 0.5, 0.0085]),
            "disability": rng.choice(["disabled", "not disabled"], n, p=[0.1, 0.9]),
        }
    )  # fmt: skip
    p = np.round(np.clip(rng.beta(2, 6, n) + 0.1 * (attributes["ethnicity"] == "other"), 0, 1), 2)
    y = (rng.random(n) < p).astype(float)
    truth = np.maximum(y, rng.random(n) < 0.08).astype(float)
    decisions = pd.DataFrame(
        {
            "decision": np.where(rng.random(n) < p + 0.1, "assessment", "no_further_action"),
            "band": np.where(p > 0.35, "Elevated", "Standard"),
        }
    )
    config = AuditConfig(
        attributes=("ethnicity", "sex", "disability"),
        # A three-way intersection too: its margins are the two-way ones.
        intersections=(
            ("ethnicity", "sex"),
            ("ethnicity", "disability"),
            ("sex", "disability"),
            ("ethnicity", "sex", "disability"),
        ),
        n_boot=20,
        min_size=50,
    )
    # Quarters: the latest one is short, so it has small cells of its own.
    periods = rng.choice(["2026-Q1", "2026-Q2", "2026-Q3"], n, p=[0.48, 0.48, 0.04])
    result = audit(
        y, p, attributes, truth=truth, decisions=decisions, periods=periods, config=config
    )
    internal = to_document(result)
    return internal, pseudonymise_document(internal, min_count=K)


def _row_level_export(internal: Mapping[str, Any]) -> dict[str, Any]:
    """The old export: rows with a count from 1 to 9 emptied in some tables, nothing else."""
    out = {k: v for k, v in internal.items() if k != "structure"}
    for name in ("metrics", "human", "groups", "comparisons", "human_comparisons"):
        rows = []
        for row in out.get(name) or []:
            counts = [row.get(k) for k in ("n", "numerator", "denominator")]
            if any(isinstance(c, int | float) and 0 < c < K for c in counts):
                row = {k: (None if isinstance(v, float | int) else v) for k, v in row.items()}
            rows.append(row)
        out[name] = rows
    return out


def _learn(document: Mapping[str, Any]) -> Knowledge:
    """Every count a reader can compute from the document's shown numbers, by quantity."""
    known: Knowledge = defaultdict(dict)
    total = float(document["meta"]["n"])
    known["n"][("overall", "all referrals")] = total
    estimates: dict[tuple[str, str, str, str], float] = {}
    for row in document.get("groups") or []:
        if row.get("n") is not None:
            known["n"][(row["grouping"], row["group"])] = row["n"]
        if row.get("share") is not None:
            known["n"][(row["grouping"], row["group"])] = round(row["share"] * total)
    # Estimates wherever they appear: metrics, comparisons (both sides), label gaps.
    for row in document.get("metrics") or []:
        if row.get("estimate") is not None:
            estimates[(row["grouping"], row["group"], row["label"], row["metric"])] = row[
                "estimate"
            ]
        if row.get("numerator") is not None and row.get("denominator") is not None:
            key = (row["grouping"], row["group"])
            known[f"num:{row['label']}:{row['metric']}"][key] = row["numerator"]
            known[f"den:{row['label']}:{row['metric']}"][key] = row["denominator"]
    for row in document.get("comparisons") or []:
        for group, field in ((row["group"], "estimate"), (row["reference"], "reference_estimate")):
            if row.get(field) is not None:
                estimates[(row["grouping"], group, row["label"], row["metric"])] = row[field]
    for row in document.get("label_gap") or []:
        for label in ("observed", "truth"):
            if row.get(label) is not None:
                estimates[(row["grouping"], row["group"], label, row["metric"])] = row[label]
    for row in document.get("human") or []:
        if row.get("numerator") is not None:
            key = (row["grouping"], row["group"])
            known[f"human_num:{row['metric']}"][key] = row["numerator"]
            known[f"human_den:{row['metric']}"][key] = row["denominator"]
    labels = document["meta"].get("labels") or ["observed"]
    capacities = list(document.get("thresholds") or {})
    # Ranking shares times the totals (the totals come from the overall rows).
    overall = ("overall", "all referrals")
    for row in document.get("ranking") or []:
        key = (row["grouping"], row["group"])
        if row.get("share_of_referrals") is not None:
            known["n"][key] = round(row["share_of_referrals"] * total)
        for c in capacities:
            share = row.get(f"share_of_top_{c}")
            flagged = estimates.get((*overall, labels[0], f"selection_rate_at_{c}"))
            if share is not None and flagged is not None:
                known[f"flagged:{c}"][key] = round(share * flagged * total)
        base = estimates.get((*overall, "observed", "base_rate"))
        if row.get("share_of_positives") is not None and base is not None:
            known["pos:observed"][key] = round(row["share_of_positives"] * base * total)
    # Reliability bins: sizes, rates times sizes; a group's bins sum to its size.
    for row in document.get("reliability") or []:
        key = (row["grouping"], row["group"])
        b = round(row["bin_lower"] * 10)
        if row.get("n") is not None:
            known[f"bin_n:{b}"][key] = row["n"]
            if row.get("observed_rate") is not None:
                known[f"bin_pos:{row['label']}:{b}"][key] = round(row["observed_rate"] * row["n"])
    # Quarters: shown counts, rates times counts, and quarters summing to the whole period.
    quarters = sorted({r["quarter"] for r in document.get("by_quarter") or []})
    quarter_estimates: dict[tuple[str, str, str, str, str], float] = {}
    for row in document.get("by_quarter") or []:
        key, q = (row["grouping"], row["group"]), row["quarter"]
        name = f"{row['label']}:{row['metric']}:{q}"
        if row.get("numerator") is not None:
            known[f"qnum:{name}"][key] = row["numerator"]
            known[f"qden:{name}"][key] = row["denominator"]
        if row.get("estimate") is not None:
            quarter_estimates[(*key, row["label"], row["metric"], q)] = row["estimate"]
    # Expected minus the calibration gap is the observed rate: times the size, its positives.
    first = (document["meta"].get("labels") or ["observed"])[0]
    for (grouping, group, label, metric, q), gap in list(quarter_estimates.items()):
        key = (grouping, group)
        mean = quarter_estimates.get((grouping, group, first, "mean_score", q))
        size = known[f"qden:{first}:base_rate:{q}"].get(key)
        if metric == "calibration_gap" and mean is not None and size is not None:
            known[f"qnum:{label}:base_rate:{q}"][key] = round((mean - gap) * size)
    for row in document.get("metrics") or []:
        key, name = (row["grouping"], row["group"]), f"{row['label']}:{row['metric']}"
        for part, field in (("qnum", "numerator"), ("qden", "denominator")):
            unknown = [q for q in quarters if key not in known[f"{part}:{name}:{q}"]]
            if row.get(field) is not None and len(unknown) == 1:
                shown = sum(known[f"{part}:{name}:{q}"].get(key, 0) for q in quarters)
                known[f"{part}:{name}:{unknown[0]}"][key] = row[field] - shown
    # Rates times their denominators, and a group's bins summing to its total, repeatedly.
    missing: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for row in document.get("reliability") or []:
        b = round(row["bin_lower"] * 10)
        if row.get("n") is None:
            missing[(row["grouping"], row["group"], "n")].append(b)
        if row.get("observed_rate") is None:
            missing[(row["grouping"], row["group"], row["label"])].append(b)
    for _ in range(3):
        for (grouping, group, which), bins in missing.items():
            key = (grouping, group)
            prefix, total = (
                ("bin_n", known["n"].get(key))
                if which == "n"
                else (f"bin_pos:{which}", known[f"pos:{which}"].get(key))
            )
            unknown = [b for b in bins if key not in known[f"{prefix}:{b}"]]
            if total is not None and len(unknown) == 1:
                shown = sum(
                    known[f"{prefix}:{b}"].get(key, 0) for b in range(10) if b != unknown[0]
                )
                known[f"{prefix}:{unknown[0]}"][key] = total - shown
        for (grouping, group, label, metric), value in estimates.items():
            key = (grouping, group)
            n = known["n"].get(key)
            base, _, c = metric.partition("_at_")
            pos = known[f"pos:{label}"].get(key)
            flagged = known[f"flagged:{c}"].get(key)
            if n is not None and metric == "base_rate":
                known[f"pos:{label}"][key] = round(value * n)
            if n is not None and base == "selection_rate":
                known[f"flagged:{c}"][key] = round(value * n)
            if pos is not None and base == "fnr":
                known[f"fn:{label}:{c}"][key] = round(value * pos)
            if flagged is not None and base == "precision":
                known[f"tp:{label}:{c}"][key] = round(value * flagged)
            if n is not None and pos is not None and base == "fpr":
                known[f"fp:{label}:{c}"][key] = round(value * (n - pos))
    return known


def _secrets(internal: Mapping[str, Any]) -> Knowledge:
    """The counts disclosure control must protect: small groups and counts from 1 to K - 1."""
    secret: Knowledge = defaultdict(dict)
    for row in internal["suppressed"]:
        secret["n"][(row["grouping"], row["group"])] = row["n"]
    singles = set(internal["config"]["attributes"]) | {"overall"}
    for row in internal["metrics"]:
        num, den = row.get("numerator"), row.get("denominator")
        if num is None or den is None:
            continue
        key = (row["grouping"], row["group"])
        base, _, c = row["metric"].partition("_at_")
        label = row["label"]
        name = {
            "base_rate": f"pos:{label}",
            "selection_rate": f"flagged:{c}",
            "fnr": f"fn:{label}:{c}",
            "precision": f"tp:{label}:{c}",
            "fpr": f"fp:{label}:{c}",
        }.get(base)
        if name is not None:
            for value in (num, den - num):
                if 0 < value < K:
                    secret[name][key] = num
    for row in internal["human"] or []:
        key = (row["grouping"], row["group"])
        num, den = row["numerator"], row["denominator"]
        if 0 < num < K or 0 < den - num < K:
            secret[f"human_num:{row['metric']}"][key] = num
    for row in internal.get("by_quarter") or []:
        key = (row["grouping"], row["group"])
        name = f"{row['label']}:{row['metric']}:{row['quarter']}"
        num, den = row["numerator"], row["denominator"]
        if num is None or den is None:
            continue  # mean score, calibration gap, AUC: figures of the counts above
        if 0 < num < K or 0 < den - num < K:
            secret[f"qnum:{name}"][key] = num
        if 0 < den < K:
            secret[f"qden:{name}"][key] = den
    for row in internal["reliability"]:
        if row["grouping"] not in singles:
            continue
        key, b = (row["grouping"], row["group"]), round(row["bin_lower"] * 10)
        n, pos = row["n"], round(row["observed_rate"] * row["n"])
        if 0 < n < K:
            secret[f"bin_n:{b}"][key] = n
        if 0 < pos < K or 0 < n - pos < K:
            secret[f"bin_pos:{row['label']}:{b}"][key] = pos
    return secret


def _recovered(
    internal: Mapping[str, Any], known: Knowledge, secret: Knowledge
) -> list[tuple[str, tuple[str, str], float]]:
    """Secret counts read directly or solved exactly from the known ones (with the totals)."""
    structure = Structure.from_document(internal)
    found = []
    for quantity, cells in secret.items():
        have = known.get(quantity, {})
        rows = [structure.index[k] for k in have if k in structure.index]
        basis = np.zeros((0, structure.rows.shape[1]))
        if rows:
            _, s, vt = np.linalg.svd(structure.rows[rows], full_matrices=False)
            basis = vt[: int((s > 1e-9 * s[0]).sum())]
        for key, value in cells.items():
            if key in have:
                if round(have[key]) == round(value):
                    found.append((quantity, key, value))
                continue
            target = structure.rows[structure.index[key]]
            residual = target - (target @ basis.T) @ basis
            if np.linalg.norm(residual) < 1e-7 * np.linalg.norm(target):
                found.append((quantity, key, value))
    return found


def test_the_attack_recovers_small_counts_from_the_old_export(documents) -> None:
    internal, _ = documents
    old = _row_level_export(internal)
    found = _recovered(internal, _learn(old), _secrets(internal))
    kinds = {q.split(":")[0] for q, _, _ in found}
    # Subtraction (the small sex group's size), reliability bins and repeated estimates all work.
    assert ("n", ("sex", "unknown")) in {(q, k) for q, k, _ in found}
    assert {"n", "bin_n", "bin_pos", "flagged", "fn", "fp", "human_num", "qnum"} <= kinds, kinds
    assert len(found) > 100


def test_no_withheld_count_is_recoverable_from_the_published_audit(documents) -> None:
    internal, published = documents
    secret = _secrets(internal)
    assert sum(len(v) for v in secret.values()) > 50, "the world must have small counts to hide"
    found = _recovered(internal, _learn(published), secret)
    assert found == []
    assert "structure" not in published
    assert published["disclosure"]["source"].startswith("Government Statistical Service")
    withheld = {(r["grouping"], r["group"]) for r in published["suppressed"]}
    assert ("sex", "unknown") in withheld
    # Subtraction: the sex totals no longer reveal the small group, nor a sum under 50.
    shown = sum(g["n"] for g in published["groups"] if g["grouping"] == "sex")
    assert published["meta"]["n"] - shown >= 50


def test_no_number_of_a_withheld_cell_appears_anywhere(documents) -> None:
    _, published = documents
    hidden = [r for r in published["metrics"] if r.get("withheld")]
    assert hidden and all(r["estimate"] is None and r["numerator"] is None for r in hidden)
    hidden_keys = {(r["grouping"], r["group"], r["label"], r["metric"]) for r in hidden}
    for row in published["comparisons"]:
        sides = {
            (row["grouping"], g, row["label"], row["metric"])
            for g in (row["group"], row["reference"])
        }
        if sides & hidden_keys:
            assert row["withheld"] and row["estimate"] is None and row["verdict"] is None
            assert row["difference"] is None and row["p_value"] is None
    for row in published["label_gap"] or []:
        if any(
            (row["grouping"], row["group"], lab, row["metric"]) in hidden_keys
            for lab in ("observed", "truth")
        ):
            assert row["observed"] is None and row["truth"] is None
    gone = {(r["grouping"], r["group"]) for r in published["suppressed"]}
    for name in ("metrics", "ranking", "reliability", "human", "label_gap", "groups"):
        assert not gone & {(r["grouping"], r["group"]) for r in published[name] or []}, name


def test_primary_suppression_alone_would_leak(documents, monkeypatch) -> None:
    from models.fairness import _disclosure

    internal, _ = documents
    monkeypatch.setattr(_disclosure, "protect", lambda cells, _k: cells.primary.copy())
    primary_only = pseudonymise_document(internal, min_count=K)
    found = _recovered(internal, _learn(primary_only), _secrets(internal))
    assert ("n", ("sex", "unknown")) in {(q, k) for q, k, _ in found}
    assert {q.split(":")[0] for q, _, _ in found} >= {"n", "bin_n"}


def test_views_use_only_shown_rows(documents) -> None:
    from models.fairness import render_html

    internal, published = documents
    gone = {(r["grouping"], r["group"]) for r in published["suppressed"]}
    assert not gone & {(r["grouping"], r["group"]) for r in published["human_vs_model"]}
    shown = {
        (r["grouping"], r["group"])
        for r in published["metrics"]
        if r["metric"] == "selection_rate_at_10" and not r.get("withheld")
    }
    for row in published["summary_measures"]:
        if row["measure"] == "demographic_parity" and row["capacity"] == 10:
            assert row["groups"] == sum(1 for g, _ in shown if g == row["grouping"])
    # The sex grouping loses two groups in publication: its spread is over one group.
    internal_sex = [r for r in internal["summary_measures"] if r["grouping"] == "sex"]
    published_sex = [r for r in published["summary_measures"] if r["grouping"] == "sex"]
    assert max(r["groups"] for r in published_sex) < max(r["groups"] for r in internal_sex)
    html = render_html(published)
    assert "Disclosure control" in html and "Summary measures" in html
    assert "Change over time" in html and "same capacity" in html
